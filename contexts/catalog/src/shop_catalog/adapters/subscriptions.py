"""What catalog does when orders are placed or cancelled: hold or give back their stock.

Each handler hands the delivery's unit of work to the use case, so the stock change, its
events and the record that the event was handled commit together.
"""

from __future__ import annotations

from shop_catalog.application.stock import StockKeeping
from shop_catalog.domain.model import merge_lines
from shop_kernel.unit_of_work import UnitOfWork
from shop_orders_contract import OrderCancelled, OrderPlaced, OrderRejected


class ReserveStock:
    def __init__(self, stock: StockKeeping) -> None:
        self._stock = stock

    async def __call__(self, event: OrderPlaced, uow: UnitOfWork) -> None:
        lines = merge_lines([(line.sku, line.quantity) for line in event.order.lines])
        await self._stock.reserve_stock_for_order(uow, event.order.id, lines)


class ReleaseStock:
    """A cancelled order gives its stock back; so does a rejected one whose reservation came
    too late (it timed out waiting): if the reservation has not run yet, the order is marked
    settled, and the late reservation holds nothing. A rejection for short stock held none."""

    def __init__(self, stock: StockKeeping) -> None:
        self._stock = stock

    async def __call__(self, event: OrderCancelled | OrderRejected, uow: UnitOfWork) -> None:
        await self._stock.release_stock_for_order(uow, event.order.id)
