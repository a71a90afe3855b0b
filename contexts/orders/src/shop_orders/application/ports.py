"""What the orders use cases need from the outside world."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from shop_orders.domain.model import Order


class Orders(Protocol):
    async def lock(self, order_id: uuid.UUID) -> Order | None:
        """The order, locked until the transaction ends: changes to one order serialise."""
        ...

    async def add(self, order: Order) -> None: ...

    async def save(self, order: Order) -> None:
        """Write the order if it still holds the version it was read at (ConcurrentChange)."""
        ...

    async def pending_since(self, before: datetime, limit: int) -> list[uuid.UUID]:
        """Orders pending since before ``before``, longest waiting first, at most ``limit``."""
        ...


class OrdersTransaction(Protocol):
    @property
    def orders(self) -> Orders: ...

    async def commit(self) -> None: ...


class OrdersUnitOfWork(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[OrdersTransaction]: ...
