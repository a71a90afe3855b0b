"""What the catalog's use cases need from the outside world."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Protocol

from shop_catalog.domain.model import Product, StockReservation
from shop_kernel.unit_of_work import UnitOfWork


class Products(Protocol):
    """The products, in the transaction of the unit of work each call is given."""

    async def get(self, uow: UnitOfWork, sku: str) -> Product | None: ...

    async def lock(self, uow: UnitOfWork, skus: Iterable[str]) -> dict[str, Product]: ...

    async def add(self, uow: UnitOfWork, product: Product) -> None: ...

    async def save(self, uow: UnitOfWork, product: Product) -> None: ...

    async def record_movement(
        self,
        uow: UnitOfWork,
        product: Product,
        *,
        actor: str,
        on_hand_delta: int = 0,
        reserved_delta: int = 0,
        reason: str,
        order_id: uuid.UUID | None = None,
    ) -> None: ...


class Reservations(Protocol):
    async def lock(self, uow: UnitOfWork, order_id: uuid.UUID) -> StockReservation | None: ...

    async def add(self, uow: UnitOfWork, reservation: StockReservation) -> bool: ...

    async def save(self, uow: UnitOfWork, reservation: StockReservation) -> None: ...
