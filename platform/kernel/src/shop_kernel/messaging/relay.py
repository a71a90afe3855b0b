"""The outbox relay: moves committed events from PostgreSQL to the subscribers' queues.

It claims unpublished rows with ``FOR UPDATE SKIP LOCKED`` (so any number of relays share
the work), enqueues one message per (event, subscriber), and marks the rows published in the
same transaction. It scans for *unpublished rows*, not past a "highest id seen", so an event
whose transaction commits late (with a lower id than rows already published) is never
skipped. It wakes on NOTIFY and polls as a fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import dramatiq
import psycopg
from sqlalchemy import Text, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.log import get_logger
from shop_kernel.messaging.metrics import RELAY_BATCH_EVENTS, RELAY_BATCH_SECONDS
from shop_kernel.messaging.outbox import CHANNEL
from shop_kernel.messaging.subscriptions import Route
from shop_kernel.messaging.tables import outbox
from shop_kernel.sql import libpq_url

log = get_logger(__name__)

Enqueue = Callable[[Sequence[dramatiq.Message[None]]], None]


@dataclass(frozen=True)
class RelayBatch:
    events: int
    messages: int
    seconds: float


class Relay:
    def __init__(
        self,
        engine: AsyncEngine,
        listen_url: str,
        routes: Sequence[Route],
        enqueue: Enqueue,
        *,
        batch_size: int = 500,
        poll_interval: float = 0.25,
    ) -> None:
        self._engine = engine
        self._listen_url = libpq_url(listen_url)
        self._routes: Mapping[str, list[Route]] = _by_event(routes)
        self._enqueue = enqueue
        self._batch_size = batch_size
        self._poll_interval = poll_interval

    async def relay_once(self) -> RelayBatch:
        """Claim one batch, enqueue its messages, mark it published; all or nothing."""
        started = time.perf_counter()
        async with self._engine.begin() as connection:
            # Claim and mark in one statement: the marks only count if the enqueue below
            # succeeds, since a failure rolls the whole transaction back.
            claimed = (
                select(outbox.c.id)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.id)
                .limit(self._batch_size)
                .with_for_update(skip_locked=True)
            )
            returned = (
                await connection.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(claimed.scalar_subquery()))
                    .values(published_at=func.now())
                    .returning(
                        outbox.c.id,
                        outbox.c.event_type,
                        outbox.c.payload.cast(Text).label("payload"),
                        outbox.c.request_id,
                    )
                )
            ).all()
            if not returned:
                return RelayBatch(0, 0, time.perf_counter() - started)
            rows = sorted(returned, key=lambda row: row.id)  # RETURNING has no order
            messages: list[dramatiq.Message[None]] = [
                dramatiq.Message[None](
                    queue_name=route.queue_name,
                    actor_name=route.actor_name,
                    args=(row.payload,),
                    kwargs={},
                    options={"request_id": row.request_id, "event_type": row.event_type},
                )
                for row in rows
                for route in self._routes.get(row.event_type, ())
            ]
            await asyncio.to_thread(self._enqueue, messages)
        batch = RelayBatch(len(rows), len(messages), time.perf_counter() - started)
        RELAY_BATCH_EVENTS.observe(batch.events)
        RELAY_BATCH_SECONDS.observe(batch.seconds)
        return batch

    async def drain(self) -> int:
        """Relay until nothing is left to claim; return how many events were published."""
        total = 0
        while (batch := await self.relay_once()).events:
            total += batch.events
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set: on every NOTIFY, and every ``poll_interval`` anyway.
        (Published rows are purged on the worker's schedule, see ``messaging.retention``.)"""
        wake = asyncio.Event()
        listener = asyncio.create_task(self._listen(wake, stop))
        try:
            while not stop.is_set():
                try:
                    await self.drain()
                except Exception:  # a database or Redis outage: log, back off, try again
                    log.exception("relay batch failed; retrying")
                    await asyncio.sleep(1.0)
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self._poll_interval)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self, wake: asyncio.Event, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(self._listen_url, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for _ in conn.notifies():
                        wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - polling carries on; listening comes back
                log.warning("relay cannot listen for notifications; polling", error=repr(exc))
                await asyncio.sleep(2.0)


def _by_event(routes: Sequence[Route]) -> dict[str, list[Route]]:
    grouped: dict[str, list[Route]] = {}
    for route in routes:
        grouped.setdefault(route.event_tag, []).append(route)
    return grouped
