"""Reservations against the real write store: atomic, all-or-nothing, once per order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
from catalog_order_events import order_cancelled, order_placed
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_catalog.adapters.sql import SqlProducts, SqlReservations
from shop_catalog.adapters.subscriptions import ReleaseStock, ReserveStock
from shop_catalog.application.stock import StockKeeping
from shop_catalog.domain.model import Product, StockReservation, parse_sku
from shop_catalog.module import module as catalog_module
from shop_devkit.plugin import MakeDatabase
from shop_kernel.domain import Money
from shop_kernel.messaging.delivery import Delivery
from shop_kernel.messaging.events import EventRegistry
from shop_kernel.messaging.subscriptions import Route, subscribe
from shop_kernel.messaging.tables import MIGRATIONS as MESSAGING
from shop_kernel.modules import translate_with
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_kernel.unit_of_work import Transactions, UnitOfWork
from shop_orders_contract import OrderCancelled, OrderPlaced


@pytest.fixture
async def engine(make_database: MakeDatabase) -> AsyncIterator[AsyncEngine]:
    url = make_database([MESSAGING, catalog_module.migrations])  # the kernel's and its own
    engine = create_engine(Settings(database_url=url, db_pool_size=25))
    yield engine
    await engine.dispose()


@pytest.fixture
def transactions(engine: AsyncEngine) -> Transactions:
    return Transactions(engine, translate_with([catalog_module]))


@pytest.fixture
def keeping() -> StockKeeping:
    return StockKeeping(SqlProducts(), SqlReservations())


class Stock:
    """The stock use cases, each call in a unit of work of its own (as a delivery of its
    event would give it)."""

    def __init__(self, keeping: StockKeeping, transactions: Transactions) -> None:
        self._keeping = keeping
        self._transactions = transactions

    async def reserve_stock_for_order(
        self, order_id: uuid.UUID, lines: dict[str, int]
    ) -> StockReservation:
        uow = self._transactions.unit_of_work()
        return await self._keeping.reserve_stock_for_order(uow, order_id, lines)

    async def release_stock_for_order(self, order_id: uuid.UUID) -> bool:
        uow = self._transactions.unit_of_work()
        return await self._keeping.release_stock_for_order(uow, order_id)


@pytest.fixture
def stock(keeping: StockKeeping, transactions: Transactions) -> Stock:
    return Stock(keeping, transactions)


async def stocked(engine: AsyncEngine, on_hand: int) -> str:
    sku = f"T-{uuid.uuid4().hex[:10].upper()}"
    product = Product.create(parse_sku(sku), "Thing", "", Money(100, "EUR"), on_hand)
    async with UnitOfWork(engine, translate_with([catalog_module])) as uow:
        await SqlProducts().add(uow, product)
        await uow.commit()
    return sku


async def levels(engine: AsyncEngine, sku: str) -> tuple[int, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT on_hand, reserved FROM catalog.products WHERE sku = :s"), {"s": sku}
            )
        ).one()
    return row.on_hand, row.reserved


async def test_twenty_orders_competing_for_five_units_reserve_exactly_five(
    engine: AsyncEngine, stock: Stock
) -> None:
    sku = await stocked(engine, 5)
    outcomes = await asyncio.gather(
        *(stock.reserve_stock_for_order(uuid.uuid4(), {sku: 1}) for _ in range(20))
    )
    assert sorted(o.status for o in outcomes).count("reserved") == 5
    assert await levels(engine, sku) == (5, 5)


async def test_a_reservation_takes_all_lines_or_none_without_deadlocks(
    engine: AsyncEngine, stock: Stock
) -> None:
    a, b = await stocked(engine, 3), await stocked(engine, 3)
    # Opposite line orders from many orders at once: locks are taken in sku order.
    orders = [{a: 1, b: 1} if n % 2 else {b: 1, a: 1} for n in range(10)]
    outcomes = await asyncio.gather(
        *(stock.reserve_stock_for_order(uuid.uuid4(), lines) for lines in orders)
    )
    assert [o.status for o in outcomes].count("reserved") == 3
    assert await levels(engine, a) == (3, 3)
    assert await levels(engine, b) == (3, 3)
    short = await stock.reserve_stock_for_order(uuid.uuid4(), {a: 1, "NO-SUCH-SKU": 1})
    assert short.status == "failed"
    assert {s.sku for s in short.shortfalls} == {a, "NO-SUCH-SKU"}


async def test_a_repeated_reservation_or_release_changes_nothing(
    engine: AsyncEngine, stock: Stock
) -> None:
    sku = await stocked(engine, 10)
    order = uuid.uuid4()
    first = await stock.reserve_stock_for_order(order, {sku: 4})
    again = await stock.reserve_stock_for_order(order, {sku: 4})
    assert (first.status, again.status) == ("reserved", "reserved")
    assert await levels(engine, sku) == (10, 4)
    assert await stock.release_stock_for_order(order)
    assert not await stock.release_stock_for_order(order)
    assert await levels(engine, sku) == (10, 0)
    async with engine.connect() as conn:
        moves = (
            await conn.execute(
                text(
                    "SELECT reserved_delta, reserved FROM catalog.stock_movements "
                    "WHERE sku = :s ORDER BY id"
                ),
                {"s": sku},
            )
        ).all()
    assert [tuple(m) for m in moves] == [(4, 4), (-4, 0)]


async def test_a_cancel_that_overtakes_its_reservation_leaves_nothing_held(
    engine: AsyncEngine, stock: Stock
) -> None:
    sku = await stocked(engine, 10)
    order = uuid.uuid4()
    assert not await stock.release_stock_for_order(order)  # the cancel arrives first
    late = await stock.reserve_stock_for_order(order, {sku: 4})
    assert late.status == "released"
    assert await levels(engine, sku) == (10, 0)


async def test_reservations_publish_their_outcome(engine: AsyncEngine, stock: Stock) -> None:
    sku = await stocked(engine, 1)
    made, failed = uuid.uuid4(), uuid.uuid4()
    await stock.reserve_stock_for_order(made, {sku: 1})
    await stock.reserve_stock_for_order(failed, {sku: 1})
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT aggregate_id, event_type FROM messaging.outbox "
                    "WHERE aggregate_id IN (:a, :b)"
                ),
                {"a": str(made), "b": str(failed)},
            )
        ).all()
    assert sorted((r.aggregate_id == str(made), r.event_type) for r in rows) == [
        (False, "catalog.StockReservationFailed.v1"),
        (True, "catalog.StockReserved.v1"),
    ]


async def test_a_redelivered_order_placed_or_cancelled_is_handled_once(
    engine: AsyncEngine, keeping: StockKeeping, transactions: Transactions
) -> None:
    sku = await stocked(engine, 10)
    order, customer_id = uuid.uuid4(), uuid.uuid4()
    placed = order_placed(order, customer_id, [(sku, 3)], 2)
    cancelled = order_cancelled(order, customer_id, 3)
    delivery = Delivery(
        EventRegistry([OrderPlaced, OrderCancelled]),
        lambda: transactions,
        lambda reactor: reactor(keeping),
    )
    reserve = Route("catalog", subscribe(OrderPlaced, ReserveStock))
    release = Route("catalog", subscribe(OrderCancelled, ReleaseStock))
    placed_payload = msgspec.json.encode(placed).decode()
    assert await delivery.deliver(reserve, [placed_payload]) == 1
    assert await delivery.deliver(reserve, [placed_payload]) == 0
    assert await levels(engine, sku) == (10, 3)
    cancelled_payload = msgspec.json.encode(cancelled).decode()
    assert await delivery.deliver(release, [cancelled_payload]) == 1
    assert await delivery.deliver(release, [cancelled_payload]) == 0
    assert await levels(engine, sku) == (10, 0)


async def test_a_cancel_racing_a_reservation_in_flight_still_releases_it(
    engine: AsyncEngine, stock: Stock, keeping: StockKeeping
) -> None:
    sku = await stocked(engine, 10)
    order, customer_id = uuid.uuid4(), uuid.uuid4()
    placed = order_placed(order, customer_id, [(sku, 4)], 2)
    async with UnitOfWork(engine, translate_with([catalog_module])) as delivery:
        await ReserveStock(keeping)(placed, delivery)  # reserved, not yet committed
        cancel = asyncio.create_task(stock.release_stock_for_order(order))
        await asyncio.sleep(0.3)
        assert not cancel.done()  # it waits for the reservation to settle
        await delivery.commit()
    assert await cancel
    assert await levels(engine, sku) == (10, 0)


async def test_a_reservation_that_loses_the_race_announces_nothing(
    engine: AsyncEngine, stock: Stock, keeping: StockKeeping
) -> None:
    sku = await stocked(engine, 10)
    order = uuid.uuid4()
    placed = order_placed(order, uuid.uuid4(), [(sku, 4)])
    async with UnitOfWork(engine, translate_with([catalog_module])) as first:
        await ReserveStock(keeping)(placed, first)
        second = asyncio.create_task(stock.reserve_stock_for_order(order, {sku: 4}))
        await asyncio.sleep(0.3)
        await first.commit()
    assert (await second).status == "reserved"
    assert await levels(engine, sku) == (10, 4)
    async with engine.connect() as conn:
        changed = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM messaging.outbox WHERE aggregate_id = :s "
                    "AND event_type = 'catalog.StockHeld.v1'"
                ),
                {"s": sku},
            )
        ).scalar_one()
    assert changed == 1  # only the reservation that counted


async def test_of_two_concurrent_saves_the_second_is_refused_and_applies_nothing(
    engine: AsyncEngine,
) -> None:
    from shop_kernel.domain import ConcurrentChange  # noqa: PLC0415

    sku = await stocked(engine, 10)
    translate = translate_with([catalog_module])
    async with UnitOfWork(engine, translate) as first, UnitOfWork(engine, translate) as second:
        products = SqlProducts()
        mine, theirs = await products.get(first, sku), await products.get(second, sku)
        assert mine is not None
        assert theirs is not None
        mine.adjust_stock(5, "delivery")
        await products.save(first, mine)
        await first.commit()
        theirs.adjust_stock(-3, "breakage")
        with pytest.raises(ConcurrentChange):
            await products.save(second, theirs)
    assert await levels(engine, sku) == (15, 0)
