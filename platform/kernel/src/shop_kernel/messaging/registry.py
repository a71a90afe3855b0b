"""Which subscribers exist: what every running release of the service has declared.

During a rolling deploy two releases run side by side, and a relay of either must route an
event to every subscriber of both: the old relay to a subscriber only the new release has, a
new event version only the new release publishes. So routes live in PostgreSQL, not in one
process's code. Every process (API and worker alike) registers its release's routes and the
event types it knows when it starts, says it is alive every ``HEARTBEAT_S``, and leaves when
it stops; relays route by the union of the releases that have a live process.

A release is identified by what it declares (a digest of its routes and event types): two
processes of the same code share one. It stops counting once its last process has left, or
has not been heard from for ``ttl`` (a crash leaves no goodbye).

An event whose type no running release knows is not published into the void: the relay
parks it (``outbox.parked_at``), it shows as ``shop_outbox_unrouted`` and in
``shop events unrouted``, and a release that registers and knows the type unparks it.
Registration and the relays' routing decisions serialise on an advisory lock, so a relay
never parks an event that a release has just declared, nor misses a subscriber that
registered before the event was committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import socket
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shop_kernel.driver import Compiled
from shop_kernel.log import get_logger
from shop_kernel.messaging.outbox import NOTIFY
from shop_kernel.messaging.tables import (
    outbox,
    processes,
    release_events,
    release_routes,
    releases,
    route_generation,
)

log = get_logger(__name__)

HEARTBEAT_S = 30.0
# The option of a batch message that names its events' types, one per argument.
EVENT_TYPES = "event_types"
# The options that carry the W3C traceparent of a message's event, or of a batch's events.
TRACEPARENT = "traceparent"
TRACEPARENTS = "traceparents"
BATCH_SUFFIX = ".batch"  # of the actor a subscriber's batches go to


def event_types_of(options: Mapping[str, Any]) -> str:
    """The event type a message carries, or the types of a batch's events (each once)."""
    batch = options.get(EVENT_TYPES)
    if batch:
        return ", ".join(sorted(set(batch)))
    return str(options.get("event_type", "?"))


def subscriber_of(actor_name: str) -> str:
    """The subscriber an actor delivers to (its own, or its batches' actor)."""
    return actor_name.removesuffix(BATCH_SUFFIX)


# The key of the lock that registrations take exclusively and relays' routing shared.
ROUTES_LOCK = 0x5307_0001


@dataclass(frozen=True, order=True)
class RouteEntry:
    """One subscriber of one event type, and where its messages go."""

    event_type: str
    subscriber: str
    queue_name: str
    actor_name: str
    batch: bool = False  # the actor takes several events a message


@dataclass(frozen=True)
class Release:
    """What one build of the service declares: its routes and every event type it knows."""

    routes: tuple[RouteEntry, ...]
    event_types: frozenset[str]

    @classmethod
    def of(cls, routes: Iterable[RouteEntry], published: Iterable[str]) -> Release:
        entries = tuple(sorted(set(routes)))
        return cls(entries, frozenset(published) | {e.event_type for e in entries})

    @property
    def digest(self) -> str:
        canonical = json.dumps(
            {"routes": [list(vars(r).values()) for r in self.routes],
             "events": sorted(self.event_types)},
            separators=(",", ":"),
        )  # fmt: skip
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RouteTable:
    """The live routes, as relays route by them."""

    generation: int
    routes: Mapping[str, tuple[RouteEntry, ...]] = field(
        default_factory=dict[str, tuple[RouteEntry, ...]]
    )
    known: frozenset[str] = frozenset()

    def knows(self, event_type: str) -> bool:
        return event_type in self.known

    def of(self, event_type: str) -> tuple[RouteEntry, ...]:
        return self.routes.get(event_type, ())

    def with_release(self, release: Release) -> RouteTable:
        """These routes and ``release``'s: a relay's own release runs, registered or not."""
        grouped = {event_type: set(entries) for event_type, entries in self.routes.items()}
        for entry in release.routes:
            grouped.setdefault(entry.event_type, set()).add(entry)
        return RouteTable(
            self.generation,
            {event_type: tuple(sorted(entries)) for event_type, entries in grouped.items()},
            self.known | release.event_types,
        )


def _live(ttl: timedelta) -> Any:
    """The releases with a process heard from within ``ttl``."""
    return (
        select(processes.c.release)
        .where(processes.c.seen_at > func.now() - ttl)
        .distinct()
        .scalar_subquery()
    )


_LOCK_EXCLUSIVE = text(f"SELECT pg_advisory_xact_lock({ROUTES_LOCK})")
_LOCK_SHARED = text(f"SELECT pg_advisory_xact_lock_shared({ROUTES_LOCK})")
# The route set's generation, for a statement that reads it beside others.
GENERATION = select(route_generation.c.value).where(route_generation.c.id == 1).scalar_subquery()
_BUMP = (
    update(route_generation)
    .where(route_generation.c.id == 1)
    .values(value=route_generation.c.value + 1)
)


# The shared routing lock, held until the relay's transaction ends: no registration commits
# meanwhile. The generation is read in a *later* statement: a statement's snapshot is taken
# when it starts, before any lock it waits for inside. (Compiled once, for the relay's trip
# on its transaction's own driver connection.)
HOLD_ROUTES = Compiled(_LOCK_SHARED)


async def load_routes(connection: AsyncConnection, ttl: timedelta, generation: int) -> RouteTable:
    live = _live(ttl)
    rows = (
        await connection.execute(
            select(
                release_routes.c.event_type, release_routes.c.subscriber,
                release_routes.c.queue_name, release_routes.c.actor_name, release_routes.c.batch,
            ).where(release_routes.c.release.in_(live)).distinct()
        )
    ).all()  # fmt: skip
    known = (
        await connection.execute(
            select(release_events.c.event_type).where(release_events.c.release.in_(live)).distinct()
        )
    ).scalars()
    grouped: dict[str, list[RouteEntry]] = {}
    for event_type, subscriber, queue_name, actor_name, batch in rows:
        grouped.setdefault(event_type, []).append(
            RouteEntry(event_type, subscriber, queue_name, actor_name, batch)
        )
    return RouteTable(
        generation,
        {event_type: tuple(sorted(entries)) for event_type, entries in grouped.items()},
        frozenset(known),
    )


class Registration:
    """This process's entry in the registry: made at start, kept alive, removed at the end."""

    def __init__(self, engine: AsyncEngine, release: Release, *, role: str, ttl: timedelta) -> None:
        self._engine = engine
        self._release = release
        self._role = role
        self._ttl = ttl
        self.process_id = uuid.uuid4()

    @property
    def release(self) -> Release:
        return self._release

    async def register(self) -> None:
        digest = self._release.digest
        async with self._engine.begin() as conn:
            await conn.execute(_LOCK_EXCLUSIVE)
            await conn.execute(insert(releases).values(release=digest).on_conflict_do_nothing())
            if self._release.routes:
                await conn.execute(
                    insert(release_routes).on_conflict_do_nothing(),
                    [{"release": digest, **vars(route)} for route in self._release.routes],
                )
            if self._release.event_types:
                await conn.execute(
                    insert(release_events).on_conflict_do_nothing(),
                    [
                        {"release": digest, "event_type": t}
                        for t in sorted(self._release.event_types)
                    ],
                )
            await conn.execute(
                insert(processes).values(
                    id=self.process_id, release=digest, role=self._role,
                    host=socket.gethostname(), pid=os.getpid(),
                )
            )  # fmt: skip
            await self._forget_the_gone(conn)
            await conn.execute(_BUMP)
            unparked = await conn.execute(
                update(outbox)
                .where(
                    outbox.c.parked_at.is_not(None),
                    outbox.c.event_type.in_(sorted(self._release.event_types)),
                )
                .values(parked_at=None)
            )
            if cast("CursorResult[Any]", unparked).rowcount:
                await conn.execute(NOTIFY)
        log.info(
            "release registered", release=digest, role=self._role,
            process_id=str(self.process_id), routes=len(self._release.routes),
            unparked=cast("CursorResult[Any]", unparked).rowcount,
        )  # fmt: skip

    async def heartbeat(self) -> None:
        """Say this process is alive; register again if it had been given up for gone."""
        async with self._engine.begin() as conn:
            seen = await conn.execute(
                update(processes)
                .where(processes.c.id == self.process_id)
                .values(seen_at=func.now())
            )
        if cast("CursorResult[Any]", seen).rowcount == 0:
            await self.register()

    async def leave(self) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(_LOCK_EXCLUSIVE)
            await conn.execute(delete(processes).where(processes.c.id == self.process_id))
            await self._forget_the_gone(conn)
            await conn.execute(_BUMP)
        log.info("release left", release=self._release.digest, process_id=str(self.process_id))

    async def _forget_the_gone(self, conn: AsyncConnection) -> None:
        """Processes not heard from within the TTL, and releases no process runs any more."""
        await conn.execute(delete(processes).where(processes.c.seen_at <= func.now() - self._ttl))
        running = select(processes.c.release).distinct().scalar_subquery()
        gone = select(releases.c.release).where(releases.c.release.not_in(running))
        for table in (release_routes, release_events):
            await conn.execute(delete(table).where(table.c.release.in_(gone.scalar_subquery())))
        await conn.execute(delete(releases).where(releases.c.release.not_in(running)))


@dataclass(frozen=True)
class Unrouted:
    event_type: str
    events: int
    oldest_age_seconds: float


async def unrouted(engine: AsyncEngine) -> list[Unrouted]:
    """Events parked because no running release knows their type, per type."""
    query = (
        select(
            outbox.c.event_type,
            func.count(),
            func.extract("epoch", func.now() - func.min(outbox.c.created_at)),
        )
        .where(outbox.c.parked_at.is_not(None))
        .group_by(outbox.c.event_type)
        .order_by(outbox.c.event_type)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [Unrouted(str(t), int(n), float(age or 0)) for t, n, age in rows]


@dataclass(frozen=True)
class RunningRelease:
    release: str
    processes: Sequence[tuple[str, str, int]]  # (role, host, pid)
    routes: int


async def running_releases(engine: AsyncEngine, ttl: timedelta) -> list[RunningRelease]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(processes.c.release, processes.c.role, processes.c.host, processes.c.pid)
                .where(processes.c.seen_at > func.now() - ttl)
                .order_by(processes.c.release, processes.c.role, processes.c.host, processes.c.pid)
            )
        ).all()
        counted = await conn.execute(
            select(release_routes.c.release, func.count()).group_by(release_routes.c.release)
        )
        counts = {str(release): int(n) for release, n in counted}
    found: dict[str, list[tuple[str, str, int]]] = {}
    for release, role, host, pid in rows:
        found.setdefault(release, []).append((role, host, pid))
    return [RunningRelease(r, tuple(p), int(counts.get(r, 0))) for r, p in found.items()]


async def stay_registered(registration: Registration, stop: asyncio.Event) -> None:
    """Register (again, if the first try met an outage), then say alive until ``stop``."""
    registered = False
    while not stop.is_set():
        try:
            if registered:
                await registration.heartbeat()
            else:
                await registration.register()
                registered = True
        except Exception as exc:  # noqa: BLE001 - a store outage: the next beat tries again
            log.warning("registry not reached; trying again", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HEARTBEAT_S if registered else 2.0)
    try:
        await registration.leave()
    except Exception as exc:  # noqa: BLE001 - the TTL retires a process that could not say so
        log.warning("could not leave the registry; it forgets this process later", error=repr(exc))
