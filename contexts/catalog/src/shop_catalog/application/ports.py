"""What the catalog's use cases need from the outside world."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from shop_catalog.domain.model import Product, StockReservation


class Products(Protocol):
    async def get(self, sku: str) -> Product | None: ...

    async def lock(self, skus: Iterable[str]) -> dict[str, Product]: ...

    async def add(self, product: Product) -> None: ...

    async def save(self, product: Product) -> None: ...

    async def record_movement(
        self,
        product: Product,
        *,
        actor: str,
        on_hand_delta: int = 0,
        reserved_delta: int = 0,
        reason: str,
        order_id: uuid.UUID | None = None,
    ) -> None: ...


class Reservations(Protocol):
    async def lock(self, order_id: uuid.UUID) -> StockReservation | None: ...

    async def add(self, reservation: StockReservation) -> bool: ...

    async def save(self, reservation: StockReservation) -> None: ...


class CatalogTransaction(Protocol):
    @property
    def products(self) -> Products: ...

    @property
    def reservations(self) -> Reservations: ...

    async def commit(self) -> None: ...


class CatalogUnitOfWork(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[CatalogTransaction]: ...
