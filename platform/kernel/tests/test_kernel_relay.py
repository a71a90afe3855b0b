"""The relay publishes each committed event once per subscriber, all or nothing per batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import dramatiq
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.messaging.events import IntegrationEvent
from shop_kernel.messaging.relay import Relay
from shop_kernel.messaging.subscriptions import Route, project, subscribe
from shop_kernel.messaging.tables import MIGRATIONS, outbox
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_kernel.testing.plugin import MakeDatabase
from shop_kernel.unit_of_work import UnitOfWork


class BellRung(IntegrationEvent, frozen=True, tag="test.BellRung.v1"):
    times: int


class Unheard(IntegrationEvent, frozen=True, tag="test.Unheard.v1"):
    pass


class CountRings:
    async def __call__(self, event: BellRung, uow: UnitOfWork) -> None: ...


class RingView:
    async def __call__(self, event: BellRung) -> None: ...


ROUTES = [
    Route("tower", subscribe(BellRung, CountRings)),
    Route("tower", project(BellRung, RingView)),
]


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


def relay(engine: AsyncEngine, box: Outbox) -> Relay:
    return Relay(
        engine,
        str(engine.url.render_as_string(hide_password=False)),
        ROUTES,
        box.enqueue,
        batch_size=3,
    )


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
