"""What orders does when catalog has tried to reserve an order's stock: confirm or reject.

Each handler hands the delivery's unit of work to the use case, so the order's change, its
events and the record that the event was handled commit together.
"""

from __future__ import annotations

from shop_catalog_contract import StockReservationFailed, StockReserved
from shop_kernel.unit_of_work import UnitOfWork
from shop_orders.application.ordering import Ordering


class ConfirmOrder:
    def __init__(self, ordering: Ordering) -> None:
        self._ordering = ordering

    async def __call__(self, event: StockReserved, uow: UnitOfWork) -> None:
        await self._ordering.stock_reserved(uow, event.order_id)


class RejectOrder:
    def __init__(self, ordering: Ordering) -> None:
        self._ordering = ordering

    async def __call__(self, event: StockReservationFailed, uow: UnitOfWork) -> None:
        await self._ordering.stock_short(uow, event.order_id, [s.sku for s in event.shortfalls])
