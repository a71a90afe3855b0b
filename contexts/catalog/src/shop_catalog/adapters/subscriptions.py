"""What catalog does when orders are placed or cancelled: hold or give back their stock."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from shop_catalog.adapters.sql import SqlCatalogTransaction
from shop_catalog.application.ports import CatalogTransaction
from shop_catalog.application.stock import StockKeeping
from shop_catalog.domain.model import merge_lines
from shop_kernel.unit_of_work import UnitOfWork
from shop_orders.contract import OrderCancelled, OrderPlaced


class _InDelivery(SqlCatalogTransaction):
    """The delivery's own transaction: it commits (with the inbox row) after the handler."""

    async def commit(self) -> None:
        return None


def _within(uow: UnitOfWork) -> StockKeeping:
    @asynccontextmanager
    async def transaction() -> AsyncGenerator[CatalogTransaction]:
        yield _InDelivery(uow)

    return StockKeeping(transaction)


class ReserveStock:
    async def __call__(self, event: OrderPlaced, uow: UnitOfWork) -> None:
        lines = merge_lines([(line.sku, line.quantity) for line in event.lines])
        await _within(uow).reserve_stock_for_order(event.order_id, lines)


class ReleaseStock:
    async def __call__(self, event: OrderCancelled, uow: UnitOfWork) -> None:
        await _within(uow).release_stock_for_order(event.order_id)
