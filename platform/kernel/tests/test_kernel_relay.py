"""The relay publishes each committed event once per subscriber of every running release,
all or nothing per batch, and keeps back (parks) what no running release knows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_devkit.app_plugin import patience
from shop_devkit.plugin import MakeDatabase
from shop_kernel.messaging.events import IntegrationEvent
from shop_kernel.messaging.outbox import CHANNEL
from shop_kernel.messaging.registry import (
    TRACEPARENT,
    TRACEPARENTS,
    Registration,
    Release,
    RouteEntry,
    unrouted,
)
from shop_kernel.messaging.relay import Relay, RelayBatch
from shop_kernel.messaging.subscriptions import Route, project, subscribe
from shop_kernel.messaging.tables import MIGRATIONS, outbox
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_kernel.unit_of_work import UnitOfWork


class BellRung(IntegrationEvent, frozen=True, tag="test.BellRung.v1"):
    times: int


class Unheard(IntegrationEvent, frozen=True, tag="test.Unheard.v1"):
    pass


class BellRungV2(IntegrationEvent, frozen=True, tag="test.BellRung.v2"):
    times: int
    loud: bool


class CountRings:
    async def __call__(self, event: BellRung, uow: UnitOfWork) -> None: ...


class RingView:
    async def __call__(self, event: BellRung) -> None: ...


ROUTES = [
    Route("tower", subscribe(BellRung, CountRings)),
    Route("tower", project(BellRung, RingView)),
]
TTL = timedelta(hours=24)


def release_of(routes: Sequence[Route], published: Sequence[str] = ()) -> Release:
    entries = [RouteEntry(r.event_tag, r.subscriber, r.queue_name, r.actor_name) for r in routes]
    return Release.of(entries, published)


# This relay's own release: it publishes Unheard, which nobody subscribes to.
OWN = release_of(ROUTES, ["test.BellRung.v1", "test.Unheard.v1"])


class Audit:
    async def __call__(self, event: BellRung, uow: UnitOfWork) -> None: ...


# A newer release: one more subscriber, and a new version of the event.
NEWER = release_of(
    [
        *ROUTES,
        Route("tower", subscribe(BellRung, Audit)),
        Route("tower", subscribe(BellRungV2, Audit)),
    ]
)


@pytest.fixture
async def engine(make_database: MakeDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=make_database([MIGRATIONS])))
    yield engine
    await engine.dispose()


class Outbox:
    def __init__(self) -> None:
        self.sent: list[dramatiq.Message[Any]] = []
        self.broken = False

    def enqueue(self, messages: Sequence[dramatiq.Message[Any]]) -> None:
        if self.broken:
            raise ConnectionError("Redis is down")
        self.sent.extend(messages)


def relay(engine: AsyncEngine, box: Outbox, release: Release = OWN) -> Relay:
    return Relay(
        engine,
        str(engine.url.render_as_string(hide_password=False)),
        box.enqueue,
        release=release,
        release_ttl=TTL,
        batch_size=3,
    )


def running(engine: AsyncEngine, release: Release) -> Registration:
    return Registration(engine, release, role="worker", ttl=TTL)


def delivered(box: Outbox) -> set[tuple[str, str]]:
    return {(m.actor_name, m.options["event_type"]) for m in box.sent}


async def parked(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(outbox).where(outbox.c.parked_at.is_not(None))
        return int((await conn.execute(query)).scalar_one())


async def publish(engine: AsyncEngine, *events: IntegrationEvent) -> None:
    async with UnitOfWork(engine) as uow:
        for event in events:
            uow.publish(event)
        await uow.commit()


async def unpublished(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        return int((await conn.execute(query)).scalar_one())


async def test_each_event_goes_to_each_subscriber_queue_and_is_marked_published(
    engine: AsyncEngine,
) -> None:
    box = Outbox()
    events = [BellRung(aggregate_id="b", aggregate_version=v, times=v) for v in range(1, 8)]
    await publish(engine, *events, Unheard(aggregate_id="x", aggregate_version=1))
    published = await relay(engine, box).drain()
    assert published == 8
    assert await unpublished(engine) == 0
    assert sorted({(m.queue_name, m.actor_name) for m in box.sent}) == [
        ("tower", "tower.CountRings"),
        ("tower-projections", "tower.RingView"),
    ]
    assert len(box.sent) == 14  # 7 events x 2 subscribers; nobody listens to Unheard
    # Tracing is off: the messages carry no trace context at all.
    assert not any({TRACEPARENT, TRACEPARENTS} & set(m.options) for m in box.sent)
    assert await parked(engine) == 0  # a known event without subscribers is simply published


class Counted(Relay):
    """Counts its claims."""

    claims = 0

    async def relay_once(self) -> RelayBatch:
        self.claims += 1
        return await super().relay_once()


async def test_a_drain_stops_at_its_first_short_claim(engine: AsyncEngine) -> None:
    box = Outbox()
    events = [BellRung(aggregate_id="b", aggregate_version=v, times=v) for v in range(1, 8)]
    await publish(engine, *events)
    counted = Counted(
        engine, str(engine.url.render_as_string(hide_password=False)), box.enqueue,
        release=OWN, release_ttl=TTL, batch_size=3,
    )  # fmt: skip
    assert await counted.drain() == 7
    assert counted.claims == 3  # 3, 3 and 1 rows: no fourth claim to find nothing
    assert await unpublished(engine) == 0
    await publish(engine, *[BellRung(aggregate_id="c", aggregate_version=v, times=v)
                            for v in range(1, 4)])  # fmt: skip
    assert await counted.drain() == 3
    assert counted.claims == 5  # a full batch, then the claim that finds the outbox empty


async def test_a_failed_enqueue_leaves_the_batch_unpublished_for_the_next_try(
    engine: AsyncEngine,
) -> None:
    box = Outbox()
    await publish(engine, BellRung(aggregate_id="b", aggregate_version=1, times=1))
    box.broken = True
    with pytest.raises(ConnectionError):
        await relay(engine, box).relay_once()
    assert await unpublished(engine) == 1
    box.broken = False
    assert (await relay(engine, box).relay_once()).events == 1
    assert await unpublished(engine) == 0


async def test_two_relays_never_claim_the_same_rows(engine: AsyncEngine) -> None:
    box_a, box_b = Outbox(), Outbox()
    events = [BellRung(aggregate_id=f"b{i}", aggregate_version=1, times=1) for i in range(60)]
    await publish(engine, *events)
    await asyncio.gather(relay(engine, box_a).drain(), relay(engine, box_b).drain())
    sent = [m.args[0] for m in box_a.sent + box_b.sent if m.actor_name == "tower.CountRings"]
    assert len(sent) == len(set(sent)) == 60


async def test_an_old_relay_routes_to_the_subscribers_a_newer_running_release_added(
    engine: AsyncEngine,
) -> None:
    newer = running(engine, NEWER)
    await newer.register()
    box = Outbox()
    await publish(engine, BellRung(aggregate_id="b", aggregate_version=1, times=1))
    await publish(engine, BellRungV2(aggregate_id="b", aggregate_version=2, times=2, loud=True))
    assert await relay(engine, box).drain() == 2  # the relay of the older release
    assert delivered(box) == {
        ("tower.CountRings", "test.BellRung.v1"), ("tower.RingView", "test.BellRung.v1"),
        ("tower.Audit", "test.BellRung.v1"), ("tower.Audit", "test.BellRung.v2"),
    }  # fmt: skip
    await newer.leave()  # the newer release stops (a rollback): its own routes go with it
    box = Outbox()
    await publish(engine, BellRung(aggregate_id="b", aggregate_version=3, times=3))
    await relay(engine, box).drain()
    assert delivered(box) == {
        ("tower.CountRings", "test.BellRung.v1"), ("tower.RingView", "test.BellRung.v1"),
    }  # fmt: skip


async def test_an_event_no_running_release_knows_is_parked_and_goes_out_once_one_does(
    engine: AsyncEngine,
) -> None:
    box = Outbox()
    the_relay = relay(engine, box)
    await publish(engine, BellRungV2(aggregate_id="b", aggregate_version=1, times=1, loud=False))
    await publish(engine, BellRung(aggregate_id="b", aggregate_version=2, times=2))
    assert await the_relay.drain() == 1  # the v1 event; the v2 one is kept back
    assert delivered(box) == {
        ("tower.CountRings", "test.BellRung.v1"), ("tower.RingView", "test.BellRung.v1"),
    }  # fmt: skip
    assert await parked(engine) == 1
    assert await unpublished(engine) == 1  # never marked published
    [entry] = await unrouted(engine)
    assert (entry.event_type, entry.events) == ("test.BellRung.v2", 1)
    assert await the_relay.drain() == 0  # parked: not claimed again and again

    await running(engine, NEWER).register()  # a release that knows v2 starts
    assert await parked(engine) == 0
    assert await the_relay.drain() == 1
    assert ("tower.Audit", "test.BellRung.v2") in delivered(box)
    assert await unrouted(engine) == []


async def test_a_release_registering_while_relays_work_never_has_its_events_parked(
    engine: AsyncEngine,
) -> None:
    box = Outbox()
    relays = [relay(engine, box) for _ in range(3)]
    stop = asyncio.Event()

    async def relaying(one: Relay) -> None:
        while not stop.is_set():
            await one.drain()
            await asyncio.sleep(0)

    async def publishing() -> None:
        for n in range(60):
            await publish(engine, BellRungV2(aggregate_id="b", aggregate_version=n, times=n,
                                             loud=True))  # fmt: skip
            await asyncio.sleep(0.005)

    tasks = [asyncio.create_task(relaying(one)) for one in relays]
    writing = asyncio.create_task(publishing())
    await asyncio.sleep(0.1)
    await running(engine, NEWER).register()  # in the middle of it all
    await writing
    for one in relays:  # whatever was parked before the registration went out after it
        await one.drain()
    stop.set()
    await asyncio.gather(*tasks)
    assert await parked(engine) == 0
    assert await unpublished(engine) == 0
    audited = [m for m in box.sent if m.actor_name == "tower.Audit"]
    assert len(audited) == len({m.args[0] for m in audited}) == 60


class NewsWhileDraining(Relay):
    """A relay whose first drain ends just as an event commits: the event's notification
    reaches the relay while it is still busy, before it waits for the next one."""

    told = False

    async def drain(self) -> int:
        published = await super().drain()
        if not self.told:
            self.told = True
            engine = self._engine
            await _until_listening(engine)
            await publish(engine, BellRung(aggregate_id="late", aggregate_version=1, times=1))
            await asyncio.sleep(1.0)  # the notification reaches the relay's listener meanwhile
        return published


async def _until_listening(engine: AsyncEngine) -> None:
    query = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE query = :listen AND datname = current_database()"
    )
    for _ in range(300):
        async with engine.connect() as conn:
            if (await conn.execute(query, {"listen": f"LISTEN {CHANNEL}"})).scalar_one():
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the relay never listened")


async def test_an_event_committed_while_the_relay_drains_is_relayed_without_waiting_for_a_poll(
    engine: AsyncEngine,
) -> None:
    box = Outbox()
    news = NewsWhileDraining(
        engine, str(engine.url.render_as_string(hide_password=False)), box.enqueue,
        release=OWN, release_ttl=TTL, poll_interval=3600,  # were it to poll, it would be late
    )  # fmt: skip
    stop = asyncio.Event()
    running_relay = asyncio.create_task(news.run(stop))
    try:
        for _ in range(int(300 * patience())):
            if box.sent:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        running_relay.cancel()  # it may be waiting out its (long) poll
        with contextlib.suppress(asyncio.CancelledError):
            await running_relay
    assert ("tower.CountRings", "test.BellRung.v1") in delivered(box)
