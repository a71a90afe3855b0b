"""How long the backbone remembers: published events, handled events, answers to keyed requests,
and why dead letters died.

Each is deleted in bounded batches (one short transaction each), on the worker's schedule,
so a purge never takes a long lock or one huge DELETE, and no load starves it. The inbox is
kept longer than the dead letters (enforced by the settings): a dead letter replayed on its
last day must still find whether its event was handled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from redis.asyncio import Redis
from sqlalchemy import ColumnElement, CursorResult, Table, delete, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.log import get_logger
from shop_kernel.messaging.broker import NAMESPACE
from shop_kernel.messaging.dead_letters import REASONS_KEY, prune_reasons
from shop_kernel.messaging.metrics import PURGED_ROWS
from shop_kernel.messaging.tables import idempotency_keys, inbox, outbox
from shop_kernel.schedules import Schedule
from shop_kernel.settings import Settings

log = get_logger(__name__)

BATCH_SIZE = 5_000


@dataclass
class Purged:
    """Rows deleted per table in one round, and the size of each batch."""

    rows: dict[str, int] = field(default_factory=dict[str, int])
    batches: list[int] = field(default_factory=list[int])


async def purge_in_batches(
    engine: AsyncEngine,
    table: Table,
    expired: Callable[[], ColumnElement[bool]],
    *,
    batch_size: int,
    purged: Purged,
) -> int:
    """Delete the rows ``expired()`` selects, ``batch_size`` at a time; return how many."""
    ctid: ColumnElement[Any] = literal_column("ctid")
    name = f"{table.schema}.{table.name}"
    total = 0
    while True:
        batch = select(ctid).select_from(table).where(expired()).limit(batch_size)
        async with engine.begin() as connection:
            result = await connection.execute(
                delete(table).where(ctid == func.any(func.array(batch.scalar_subquery())))
            )
        deleted = cast("CursorResult[Any]", result).rowcount
        purged.batches.append(deleted)
        total += deleted
        if deleted < batch_size:
            break
    purged.rows[name] = purged.rows.get(name, 0) + total
    if total:
        PURGED_ROWS.labels(name).inc(total)
    return total


class Retention:
    """The kernel's purge round: outbox, inbox and Idempotency-Key answers."""

    def __init__(self, engine: AsyncEngine, redis: Redis, settings: Settings) -> None:
        self._engine = engine
        self._redis = redis
        self._outbox = timedelta(seconds=settings.outbox_retention)
        self._inbox = timedelta(seconds=settings.inbox_retention)
        self.batch_size = BATCH_SIZE
        self.namespace = NAMESPACE  # the broker's, where the dead letters are

    async def __call__(self) -> Purged:
        purged = Purged()
        await purge_in_batches(
            self._engine, outbox, lambda: outbox.c.published_at < func.now() - self._outbox,
            batch_size=self.batch_size, purged=purged,
        )  # fmt: skip
        await purge_in_batches(
            self._engine, inbox, lambda: inbox.c.processed_at < func.now() - self._inbox,
            batch_size=self.batch_size, purged=purged,
        )  # fmt: skip
        await purge_in_batches(
            self._engine, idempotency_keys, lambda: idempotency_keys.c.expires_at <= func.now(),
            batch_size=self.batch_size, purged=purged,
        )  # fmt: skip
        # Dead letters expire in the broker; the reasons recorded beside them go with them.
        reasons = await prune_reasons(self._redis, self.namespace)
        if reasons:
            purged.rows[REASONS_KEY] = reasons
            PURGED_ROWS.labels(REASONS_KEY).inc(reasons)
        if any(purged.rows.values()):
            log.info("backbone storage purged", **purged.rows)
        return purged


RETENTION = Schedule("messaging.retention", lambda settings: settings.purge_interval, Retention)
