"""Liveness and readiness: ready means this process can serve.

PostgreSQL and Redis answer and every schema is migrated: without them no request can be
served. MongoDB (the read views) and the event backlog are reported too but fail nothing:
with the read store down the reads answer 503 while sign-in, carts and checkout go on, and a
backlog (a worker down) is the worker's matter. A readiness probe that failed on either took
every API pod out of service at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import text

from shop_kernel.log import get_logger
from shop_kernel.messaging.backlog import outbox_backlog
from shop_kernel.messaging.broker import NAMESPACE
from shop_kernel.messaging.metrics import (
    DEAD_LETTERS,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE_SECONDS,
    OUTBOX_UNROUTED,
    TABLE_ROWS,
)
from shop_kernel.messaging.registry import unrouted
from shop_kernel.migrations import MigrationTarget
from shop_platform.resources import Resources

log = get_logger(__name__)

Check = Callable[[], Awaitable[None]]


class NotReady(Exception):
    """A dependency answered, but not as it should (for example an unmigrated schema)."""


# The checks whose failure means this process cannot serve.
REQUIRED = frozenset({"postgres", "redis"})


@dataclass(frozen=True)
class Readiness:
    """Runs every check at once, each bounded by ``timeout`` seconds."""

    checks: Mapping[str, Check]
    timeout: float
    required: frozenset[str] = REQUIRED

    async def run(self) -> dict[str, str]:
        names = list(self.checks)
        outcomes = await asyncio.gather(*(self._one(name) for name in names))
        return dict(zip(names, outcomes, strict=True))

    def failing(self, outcomes: Mapping[str, str]) -> list[str]:
        """The required checks that did not pass: what makes this process unready."""
        return sorted(n for n, o in outcomes.items() if n in self.required and o != "ok")

    async def _one(self, name: str) -> str:
        try:
            await asyncio.wait_for(self.checks[name](), self.timeout)
        except TimeoutError:
            return f"no answer within {self.timeout:g} s"
        except NotReady as exc:
            return str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready", and says why
            log.warning("readiness check failed", dependency=name, error=repr(exc))
            return f"{type(exc).__name__}: {exc}"
        return "ok"


def store_checks(
    resources: Resources, targets: list[MigrationTarget], *, outbox_max_age: float
) -> dict[str, Check]:
    heads = {target.schema: target.head() for target in targets}
    # Schema names come from the code's own migration targets, never from a request.
    query = text(
        " UNION ALL ".join(
            f"SELECT '{schema}' AS schema, version_num FROM \"{schema}\".alembic_version"  # noqa: S608
            for schema in heads
        )
    )

    async def postgres() -> None:
        async with resources.engine.connect() as conn:
            try:
                rows = (await conn.execute(query)).all()
            except Exception as exc:
                raise NotReady(
                    f"schemas not migrated (run `shop db upgrade`): {exc.__class__.__name__}"
                ) from exc
        current = {row.schema: row.version_num for row in rows}
        behind = [s for s, head in heads.items() if current.get(s) != head]
        if behind:
            raise NotReady(
                f"schemas not at their head revision: {', '.join(behind)} (run `shop db upgrade`)"
            )

    async def mongodb() -> None:
        await resources.mongo.admin.command("ping")

    async def redis() -> None:
        await resources.redis.ping()  # pyright: ignore[reportUnknownMemberType]

    async def outbox() -> None:
        backlog = await outbox_backlog(resources.engine)
        if backlog.oldest_age_seconds > outbox_max_age:
            raise NotReady(
                f"behind: the oldest of {backlog.events} unpublished events is "
                f"{backlog.oldest_age_seconds:.0f} s old (alert past {outbox_max_age:g} s); "
                "is a worker running?"
            )

    return {"postgres": postgres, "mongodb": mongodb, "redis": redis, "outbox": outbox}


# Event types once seen parked: their gauge goes back to 0 once they are relayed.
_UNROUTED_SEEN: set[str] = set()
# PostgreSQL's running estimate of each table's rows: no scan, however large they grow.
_TABLE_ROWS = text(
    "SELECT schemaname || '.' || relname, n_live_tup FROM pg_stat_user_tables "
    "WHERE schemaname = 'messaging'"
)


async def refresh_backbone_gauges(resources: Resources) -> None:
    """Publish the outbox backlog, the backbone's table sizes and the dead-letter count."""
    backlog = await outbox_backlog(resources.engine)
    OUTBOX_BACKLOG.set(backlog.events)
    OUTBOX_OLDEST_AGE_SECONDS.set(backlog.oldest_age_seconds)
    async with resources.engine.connect() as conn:
        for table, rows in await conn.execute(_TABLE_ROWS):
            TABLE_ROWS.labels(table).set(rows)
    parked = {entry.event_type: entry.events for entry in await unrouted(resources.engine)}
    for event_type in parked.keys() | _UNROUTED_SEEN:
        OUTBOX_UNROUTED.labels(event_type).set(parked.get(event_type, 0))
    _UNROUTED_SEEN.update(parked)
    dead = 0
    async for key in resources.redis.scan_iter(match=f"{NAMESPACE}:*.XQ", count=500):  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        dead += int(await resources.redis.zcard(key))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType, reportGeneralTypeIssues]
    DEAD_LETTERS.set(dead)
