"""A handler is given the delivery's unit of work, or one of its own where its subscription
says so; either way the event counts as handled only when the delivery commits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_devkit.plugin import MakeDatabase
from shop_kernel.messaging.delivery import Delivery
from shop_kernel.messaging.events import EventRegistry, IntegrationEvent
from shop_kernel.messaging.subscriptions import Route, TransactionKind, subscribe
from shop_kernel.messaging.tables import MIGRATIONS
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_kernel.unit_of_work import Transactions, UnitOfWork


class ShelfBuilt(IntegrationEvent, frozen=True, kw_only=True, tag="tests.ShelfBuilt.v1"):
    name: str
    then_fail: bool = False


class BuildShelf:
    """Records the shelf through the use case's own ``async with uow`` and commit, as every
    handler's use case does; fails afterwards when the event says so."""

    given: list[bool]  # whether each unit of work was already open when it was handed over

    def __init__(self) -> None:
        self.given = []

    async def __call__(self, event: ShelfBuilt, uow: UnitOfWork) -> None:
        self.given.append(uow.is_open)
        async with uow:
            await uow.connection.execute(text("INSERT INTO shelf VALUES (:n)"), {"n": event.name})
            await uow.commit()
        if event.then_fail:
            raise RuntimeError("failed after the use case committed")


@pytest.fixture
async def engine(make_database: MakeDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=make_database([MIGRATIONS])))
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE shelf (name text PRIMARY KEY)"))
    yield engine
    await engine.dispose()


async def rows(engine: AsyncEngine, query: str) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(query))).scalars())


def deliver(engine: AsyncEngine, handler: BuildShelf, transaction: TransactionKind) -> Any:
    transactions = Transactions(engine)
    delivery = Delivery(EventRegistry([ShelfBuilt]), lambda: transactions, lambda _t: handler)
    route = Route("tests", subscribe(ShelfBuilt, BuildShelf, transaction=transaction))

    async def once(*events: ShelfBuilt) -> int:
        return await delivery.deliver(route, [msgspec.json.encode(e).decode() for e in events])

    return once


def built(name: str, *, then_fail: bool = False) -> ShelfBuilt:
    return ShelfBuilt(aggregate_id=name, aggregate_version=1, name=name, then_fail=then_fail)


async def test_a_handler_s_change_commits_with_the_delivery_and_fails_with_it(
    engine: AsyncEngine,
) -> None:
    handler = BuildShelf()
    once = deliver(engine, handler, "delivery")
    assert await once(built("a"))
    with pytest.raises(RuntimeError):
        await once(built("b", then_fail=True))
    assert handler.given == [True, True]  # the delivery's own, open with its inbox row
    assert await rows(engine, "SELECT name FROM shelf") == ["a"]  # b's commit was a savepoint
    assert await rows(engine, "SELECT count(*) FROM messaging.inbox") == [1]


async def test_a_subscription_with_its_own_transaction_commits_on_its_own(
    engine: AsyncEngine,
) -> None:
    handler = BuildShelf()
    once = deliver(engine, handler, "own")
    event = built("a", then_fail=True)
    with pytest.raises(RuntimeError):
        await once(event)
    assert handler.given == [False]  # a new unit of work, begun by the use case itself
    assert await rows(engine, "SELECT name FROM shelf") == ["a"]  # kept: the mail went out
    assert await rows(engine, "SELECT count(*) FROM messaging.inbox") == [0]  # not handled
    repeat = ShelfBuilt(
        aggregate_id="b", aggregate_version=1, name="b", event_id=uuid.uuid4()
    )  # handled for good: its inbox row commits with the delivery
    assert await once(repeat)
    assert not await once(repeat)
    assert await rows(engine, "SELECT count(*) FROM messaging.inbox") == [1]


class SeesTheOthers(BuildShelf):
    """Notes, as each event is handled, how many events another connection sees handled."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__()
        self.engine = engine
        self.seen: list[int] = []

    async def __call__(self, event: ShelfBuilt, uow: UnitOfWork) -> None:
        self.seen.append(*await rows(self.engine, "SELECT count(*) FROM messaging.inbox"))
        await super().__call__(event, uow)


@pytest.mark.parametrize(
    ("transaction", "seen"),
    [
        # Each event's change was committed before the next began: a batch holds no event's
        # locks while it handles the next.
        ("delivery", [0, 1, 2]),
        # b and c were handled in one open transaction: nothing of b was visible while c was.
        ("batch", [0, 1, 1]),
    ],
)
async def test_each_new_event_of_a_batch_is_handled_once_in_its_subscription_s_transactions(
    engine: AsyncEngine, transaction: TransactionKind, seen: list[int]
) -> None:
    handler = SeesTheOthers(engine)
    once = deliver(engine, handler, transaction)
    earlier, twice = built("a"), built("b")
    assert await once(earlier) == 1
    assert await once(earlier, twice, built("c"), twice) == 2  # a handled before; b once
    assert sorted(await rows(engine, "SELECT name FROM shelf")) == ["a", "b", "c"]
    assert await rows(engine, "SELECT count(*) FROM messaging.inbox") == [3]
    assert handler.seen == seen
    assert handler.given == [True, True, True]  # the delivery's own, open with its inbox row


async def test_a_batch_that_fails_keeps_what_it_handled_before_the_failure(
    engine: AsyncEngine,
) -> None:
    handler = BuildShelf()
    once = deliver(engine, handler, "delivery")
    first = built("a")
    with pytest.raises(RuntimeError):
        await once(first, built("b", then_fail=True), built("c"))
    assert handler.given == [True, True]  # c was never reached
    assert await rows(engine, "SELECT name FROM shelf") == ["a"]  # b's own commit is undone
    assert await rows(engine, "SELECT count(*) FROM messaging.inbox") == [1]
    # Sent again (one by one, as a failed batch goes on), a is not handled twice.
    assert await once(first) == 0


async def test_a_batch_subscription_s_failing_batch_keeps_nothing(engine: AsyncEngine) -> None:
    handler = BuildShelf()
    once = deliver(engine, handler, "batch")
    first = built("a")
    with pytest.raises(RuntimeError):
        await once(first, built("b", then_fail=True), built("c"))
    assert await rows(engine, "SELECT count(*) FROM shelf") == [0]
    assert await rows(engine, "SELECT count(*) FROM messaging.inbox") == [0]
    # Sent again one by one (as a failed batch goes on), each is handled once.
    assert await once(first) == 1
    assert await once(built("c")) == 1
    assert await once(first) == 0
    assert sorted(await rows(engine, "SELECT name FROM shelf")) == ["a", "c"]
