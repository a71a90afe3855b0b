"""The orders' deadline: an order whose stock never answered does not stay pending forever."""

from __future__ import annotations

from datetime import timedelta

from shop_kernel.settings import Settings
from shop_kernel.unit_of_work import Transactions
from shop_orders.application.ordering import Ordering
from shop_orders.settings import OrdersSettings


class TimeOutPendingOrders:
    """Rejects (reason ``timeout``) every order pending longer than SHOP_ORDER_PENDING_TIMEOUT."""

    def __init__(self, ordering: Ordering, transactions: Transactions, settings: Settings) -> None:
        self._ordering = ordering
        self._transactions = transactions
        self._limit = timedelta(seconds=settings.section(OrdersSettings).order_pending_timeout)

    async def __call__(self) -> None:
        await self._ordering.time_out_pending(self._transactions.unit_of_work(), self._limit)


def check_every(settings: Settings) -> float:
    """Often enough that an order waits at most about a quarter longer than its limit."""
    return min(30.0, settings.section(OrdersSettings).order_pending_timeout / 4)
