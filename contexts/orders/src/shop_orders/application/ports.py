"""What the orders use cases need from the outside world."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from shop_kernel.unit_of_work import UnitOfWork
from shop_orders.domain.model import Order


class Orders(Protocol):
    """The orders, in the transaction of the unit of work each call is given."""

    async def lock(self, uow: UnitOfWork, order_id: uuid.UUID) -> Order | None:
        """The order, locked until the transaction ends: changes to one order serialise."""
        ...

    async def add(self, uow: UnitOfWork, order: Order) -> None: ...

    async def save(self, uow: UnitOfWork, order: Order) -> None:
        """Write the order if it still holds the version it was read at (ConcurrentChange)."""
        ...

    async def pending_since(self, uow: UnitOfWork, before: datetime, limit: int) -> list[uuid.UUID]:
        """Orders pending since before ``before``, longest waiting first, at most ``limit``."""
        ...
