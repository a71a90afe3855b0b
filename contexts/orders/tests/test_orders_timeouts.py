"""The pending-timeout sweep on PostgreSQL: it rejects what waited too long, and it waits for
no one (an order a batch of stock outcomes holds is left to that batch)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_catalog_contract import ProductFacts
from shop_devkit.plugin import MakeDatabase
from shop_kernel.messaging.tables import MIGRATIONS
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_kernel.unit_of_work import Transactions
from shop_kernel.wire import Amount
from shop_orders.adapters.sql import SqlOrders
from shop_orders.application.ordering import Caller, Item, Ordering, TargetOrder
from shop_orders.module import module

MUG = ProductFacts(sku="MUG-1", name="Mug", price=Amount(1250, "EUR"), is_active=True)


class Catalog:
    async def products(self, uow: object, skus: object) -> dict[str, ProductFacts]:
        return {MUG.sku: MUG}


@pytest.fixture
async def engine(make_database: MakeDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=make_database([MIGRATIONS, module.migrations])))
    yield engine
    await engine.dispose()


async def pending_order(ordering: Ordering, transactions: Transactions) -> uuid.UUID:
    caller = Caller(uuid.uuid4())
    order = await ordering.create(transactions.unit_of_work(), caller, [Item("MUG-1", 1)])
    await ordering.confirm(transactions.unit_of_work(), TargetOrder(caller, order.id))
    return order.id


async def test_the_sweep_skips_an_order_another_transaction_holds_and_rejects_the_rest(
    engine: AsyncEngine,
) -> None:
    transactions = Transactions(engine)
    ordering = Ordering(SqlOrders(), Catalog(), "EUR")
    held, free = [await pending_order(ordering, transactions) for _ in range(2)]
    later = datetime.now(UTC) + timedelta(hours=1)

    async def sweep() -> list[uuid.UUID]:
        return await asyncio.wait_for(
            ordering.time_out_pending(transactions.unit_of_work(), timedelta(minutes=1), now=later),
            timeout=60,
        )

    async with engine.connect() as holder:
        # A stock outcome's batch holds this order (until its transaction ends).
        await holder.execute(text("SELECT 1 FROM orders.orders WHERE id = :id FOR UPDATE"),
                             {"id": held})  # fmt: skip
        assert await sweep() == [free]  # did not wait for the held order
        await holder.rollback()
    assert await sweep() == [held]  # its turn came with the next sweep
    async with engine.connect() as conn:
        statuses = (await conn.execute(text("SELECT DISTINCT status FROM orders.orders"))).all()
    assert statuses == [("rejected",)]
