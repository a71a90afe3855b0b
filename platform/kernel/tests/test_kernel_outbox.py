"""The unit of work writes integration events to the outbox with the change, or not at all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import psycopg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_devkit.plugin import MakeDatabase
from shop_kernel.domain import AggregateRoot, DomainEvent
from shop_kernel.log import bind_request_id, clear_request_context
from shop_kernel.messaging.events import IntegrationEvent
from shop_kernel.messaging.outbox import CHANNEL
from shop_kernel.messaging.tables import MIGRATIONS, outbox
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine, libpq_url
from shop_kernel.unit_of_work import UnitOfWork


class CrateFilled(IntegrationEvent, frozen=True, tag="test.CrateFilled.v1"):
    apples: int


@dataclass(frozen=True, kw_only=True)
class Filled(DomainEvent):
    apples: int


@dataclass(kw_only=True, eq=False)
class Crate(AggregateRoot):
    id: str
    apples: int = 0

    def fill(self, apples: int) -> None:
        self.apples += apples
        self.record(Filled(apples=apples))


def translate(aggregate: AggregateRoot, event: DomainEvent) -> IntegrationEvent | None:
    if isinstance(aggregate, Crate) and isinstance(event, Filled):
        return CrateFilled(
            aggregate_id=aggregate.id, aggregate_version=aggregate.version, apples=event.apples
        )
    return None


@pytest.fixture
def url(make_database: MakeDatabase) -> str:
    return make_database([MIGRATIONS])


@pytest.fixture
async def engine(url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=url))
    yield engine
    await engine.dispose()


async def stored(engine: AsyncEngine) -> list[tuple[str, str, int, str | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                outbox.c.event_type, outbox.c.aggregate_id, outbox.c.aggregate_version,
                outbox.c.request_id,
            ).order_by(outbox.c.id)
        )  # fmt: skip
        return [(r[0], r[1], r[2], r[3]) for r in rows]


async def test_recorded_events_of_tracked_aggregates_are_stored_on_commit(
    engine: AsyncEngine,
) -> None:
    crate = Crate(id="c-1", version=4)
    bind_request_id("req-7")
    try:
        async with UnitOfWork(engine, translate) as uow:
            uow.track(crate)
            crate.fill(3)
            await uow.commit()
    finally:
        clear_request_context()
    assert await stored(engine) == [("test.CrateFilled.v1", "c-1", 4, "req-7")]
    assert crate.pending_events == ()


async def test_a_rolled_back_unit_stores_no_event(engine: AsyncEngine) -> None:
    crate = Crate(id="c-1")
    async with UnitOfWork(engine, translate) as uow:
        uow.track(crate)
        crate.fill(3)
        uow.publish(CrateFilled(aggregate_id="c-2", aggregate_version=1, apples=1))
    async with UnitOfWork(engine, translate) as uow:
        uow.publish(CrateFilled(aggregate_id="c-3", aggregate_version=1, apples=1))
        await uow.rollback()
    assert await stored(engine) == []


async def test_a_commit_wakes_listeners_and_only_after_it_commits(
    url: str, engine: AsyncEngine
) -> None:
    listener = await psycopg.AsyncConnection.connect(libpq_url(url), autocommit=True)
    async with listener:
        await listener.execute(f"LISTEN {CHANNEL}")
        async with UnitOfWork(engine) as uow:
            uow.publish(CrateFilled(aggregate_id="c-1", aggregate_version=1, apples=1))
            await uow.connection.execute(text("SELECT 1"))
            early = [n async for n in listener.notifies(timeout=0.3)]
            await uow.commit()
        woken = [n async for n in listener.notifies(timeout=2.0, stop_after=1)]
    assert early == []
    assert [n.channel for n in woken] == [CHANNEL]


async def test_events_not_translated_stay_inside_the_context(engine: AsyncEngine) -> None:
    crate = Crate(id="c-1")
    async with UnitOfWork(engine) as uow:  # no translator: nothing leaves
        uow.track(crate)
        crate.fill(1)
        await uow.commit()
    await asyncio.sleep(0)
    assert await stored(engine) == []
