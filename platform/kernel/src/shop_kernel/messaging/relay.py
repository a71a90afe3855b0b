"""The outbox relay: moves committed events from PostgreSQL to the subscribers' queues.

It claims unpublished rows with ``FOR UPDATE SKIP LOCKED`` (so any number of relays share
the work), enqueues one message per (event, subscriber), and marks the rows published in the
same transaction. It scans for *unpublished rows*, not past a "highest id seen", so an event
whose transaction commits late (with a lower id than rows already published) is never
skipped. It wakes on NOTIFY and polls as a fallback.

It routes by the registry of running releases (:mod:`shop_kernel.messaging.registry`), not by
its own code: during a rolling deploy an old relay delivers a new release's events to the new
release's subscribers, and an event no running release knows is parked, never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import dramatiq
import psycopg
from opentelemetry.trace import Span, SpanKind
from sqlalchemy import Integer, Text, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shop_kernel import tracing
from shop_kernel.driver import Compiled, driver_of
from shop_kernel.log import get_logger
from shop_kernel.messaging.metrics import RELAY_BATCH_EVENTS, RELAY_BATCH_SECONDS
from shop_kernel.messaging.outbox import CHANNEL
from shop_kernel.messaging.registry import (
    EVENT_TYPES,
    GENERATION,
    HOLD_ROUTES,
    TRACEPARENT,
    TRACEPARENTS,
    Release,
    RouteEntry,
    RouteTable,
    load_routes,
)
from shop_kernel.messaging.tables import outbox
from shop_kernel.sql import libpq_url

log = get_logger(__name__)

Enqueue = Callable[[Sequence[dramatiq.Message[None]]], None]
# How often a relay reloads the routes even when no release came or went: a release whose
# processes all stopped answering drops out of the routes this much after its TTL.
ROUTES_REFRESH_S = 30.0
# At most this many events in one message to a subscriber that takes batches.
EVENTS_PER_MESSAGE = 100


# Claim a batch of unpublished rows and mark them published, in one statement compiled once.
_CLAIM = Compiled(
    update(outbox)
    .where(
        outbox.c.id.in_(
            select(outbox.c.id)
            .where(outbox.c.published_at.is_(None), outbox.c.parked_at.is_(None))
            .order_by(outbox.c.id)
            .limit(bindparam("limit", type_=Integer))
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    )
    .values(published_at=func.now())
    .returning(
        outbox.c.id,
        outbox.c.event_type,
        outbox.c.payload.cast(Text).label("payload"),
        outbox.c.request_id,
        outbox.c.traceparent,
        GENERATION.label("generation"),
    )
)


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    event_type: str
    payload: str
    request_id: str | None
    traceparent: str | None
    generation: int


@dataclass(frozen=True)
class RelayBatch:
    claimed: int  # rows taken from the outbox
    events: int  # of those, published
    messages: int
    seconds: float
    parked: int = 0  # of those, kept back: no running release knows their type


class Relay:
    def __init__(
        self,
        engine: AsyncEngine,
        listen_url: str,
        enqueue: Enqueue,
        *,
        release: Release,
        release_ttl: timedelta,
        batch_size: int = 500,
        poll_interval: float = 0.25,
        routes_refresh_s: float = ROUTES_REFRESH_S,
        events_per_message: int = EVENTS_PER_MESSAGE,
    ) -> None:
        self._engine = engine
        self._listen_url = libpq_url(listen_url)
        self._enqueue = enqueue
        self._release = release
        self._release_ttl = release_ttl
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._routes_refresh_s = routes_refresh_s
        self._events_per_message = events_per_message
        self._table: RouteTable | None = None
        self._loaded_at = 0.0

    async def _route_table(self, connection: AsyncConnection, generation: int) -> RouteTable:
        """The live routes: reloaded when a release came or went (and now and then, for the
        ones that stopped answering), read under the lock that registrations wait for."""
        table = self._table
        stale = time.monotonic() - self._loaded_at > self._routes_refresh_s
        if table is None or table.generation != generation or stale:
            loaded = await load_routes(connection, self._release_ttl, generation)
            table = self._table = loaded.with_release(self._release)
            self._loaded_at = time.monotonic()
        return table

    async def relay_once(self) -> RelayBatch:
        """Claim one batch, enqueue its messages, mark it published; all or nothing."""
        started = time.perf_counter()
        claimed_at = time.time_ns()
        async with self._engine.begin() as connection:
            # Held to the end: a release registering now commits after this batch, so this
            # batch routes by a generation it reads below, and parks nothing that release
            # would have unparked.
            driver = driver_of(connection)
            await HOLD_ROUTES.run(driver)
            # Claim and mark in one statement: the marks only count if the enqueue below
            # succeeds, since a failure rolls the whole transaction back.
            returned = [
                _Claimed(**row) for row in await _CLAIM.rows(driver, limit=self._batch_size)
            ]
            if not returned:
                return RelayBatch(0, 0, 0, time.perf_counter() - started)
            table = await self._route_table(connection, returned[0].generation)
            rows = sorted(returned, key=lambda row: row.id)  # RETURNING has no order
            unknown = [row for row in rows if not table.knows(row.event_type)]
            if unknown:
                await self._park(connection, [(row.id, row.event_type) for row in unknown])
                rows = [row for row in rows if table.knows(row.event_type)]
            spans = _relay_spans(rows, claimed_at)
            traceparents = {
                row.id: traceparent
                for row in rows
                if (traceparent := tracing.traceparent_of(spans.get(row.id)) or row.traceparent)
            }
            messages = _messages(rows, table, self._events_per_message, traceparents)
            await asyncio.to_thread(self._enqueue, messages)
            for span in spans.values():
                span.end()
        batch = RelayBatch(
            len(returned), len(rows), len(messages), time.perf_counter() - started, len(unknown)
        )
        RELAY_BATCH_EVENTS.observe(batch.events)
        RELAY_BATCH_SECONDS.observe(batch.seconds)
        return batch

    async def drain(self) -> int:
        """Relay until a claim takes less than a full batch; return how many events were
        published. A short claim took every row it could see: rows another relay holds are
        that relay's to publish, and a row that commits later notifies (``run`` drains again
        at once), so no claim that can only come back empty is made."""
        total = 0
        while True:
            batch = await self.relay_once()
            total += batch.events
            if batch.claimed < self._batch_size:
                return total

    async def _park(self, connection: AsyncConnection, rows: Sequence[tuple[int, str]]) -> None:
        """Keep back events no running release knows (``(id, type)`` each): visible, and
        unparked by the first release that registers knowing their type."""
        await connection.execute(
            update(outbox)
            .where(outbox.c.id.in_([row_id for row_id, _ in rows]))
            .values(published_at=None, parked_at=func.now())
        )
        for event_type in sorted({event_type for _, event_type in rows}):
            log.warning(
                "events parked: no running release knows their type",
                event_type=event_type, events=sum(t == event_type for _, t in rows),
            )  # fmt: skip

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set: on every NOTIFY, and every ``poll_interval`` anyway.
        (Published rows are purged on the worker's schedule, see ``messaging.retention``.)"""
        wake = asyncio.Event()
        listener = asyncio.create_task(self._listen(wake, stop))
        try:
            while not stop.is_set():
                # Cleared before the drain, not after: a notification that comes while the
                # drain is busy (after its last claim looked) wakes the next one at once.
                wake.clear()
                try:
                    await self.drain()
                except Exception:  # a database or Redis outage: log, back off, try again
                    log.exception("relay batch failed; retrying")
                    await asyncio.sleep(1.0)
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


def _relay_spans(rows: Sequence[Any], claimed_at: int) -> dict[int, Span]:
    """A span per relayed event (when tracing), under the span that wrote it: from the claim
    to the enqueue of its messages."""
    if not tracing.enabled():
        return {}
    spans: dict[int, Span] = {}
    for row in rows:
        span = tracing.start_span(
            f"relay {row.event_type}", parent=row.traceparent, kind=SpanKind.PRODUCER,
            start_time=claimed_at,
            attributes={"shop.event_type": row.event_type, "shop.outbox_id": row.id},
        )  # fmt: skip
        if span is not None:
            spans[row.id] = span
    return spans


def _messages(
    rows: Sequence[Any],
    table: RouteTable,
    per_message: int,
    traceparents: Mapping[int, str | None],
) -> list[dramatiq.Message[None]]:
    """One message per (event, subscriber), but for the subscribers that take batches: one
    per ``per_message`` of their events in this batch, in the order they were committed.
    Each carries its events' ``traceparent`` (a batch: one per event), when they have one."""
    messages: list[dramatiq.Message[None]] = []
    batches: dict[RouteEntry, list[Any]] = {}
    for row in rows:
        for route in table.of(row.event_type):
            if route.batch:
                # Keyed by where they go: a subscriber's event types share its actor.
                key = RouteEntry("", route.subscriber, route.queue_name, route.actor_name, True)
                batches.setdefault(key, []).append(row)
                continue
            messages.append(
                dramatiq.Message[None](
                    queue_name=route.queue_name,
                    actor_name=route.actor_name,
                    args=(row.payload,),
                    kwargs={},
                    options=_traced(
                        {"request_id": row.request_id, "event_type": row.event_type},
                        TRACEPARENT, traceparents.get(row.id),
                    ),
                )
            )  # fmt: skip
    for route, batched in batches.items():
        for start in range(0, len(batched), per_message):
            chunk = batched[start : start + per_message]
            messages.append(
                dramatiq.Message[None](
                    queue_name=route.queue_name,
                    actor_name=route.actor_name,
                    args=tuple(row.payload for row in chunk),
                    kwargs={},
                    options=_traced(
                        {"request_id": chunk[0].request_id,
                         EVENT_TYPES: [row.event_type for row in chunk]},
                        TRACEPARENTS, [traceparents.get(row.id) for row in chunk],
                    ),
                )
            )  # fmt: skip
    return messages


def _traced(
    options: dict[str, Any], key: str, traceparents: str | list[str | None] | None
) -> dict[str, Any]:
    """``options`` with the events' traceparents, when any was traced (nothing otherwise)."""
    if traceparents and (isinstance(traceparents, str) or any(traceparents)):
        options[key] = traceparents
    return options
