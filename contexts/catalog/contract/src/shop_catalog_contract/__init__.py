"""The catalog context's published language: the only code other contexts may import.

Orders asks for current prices through :class:`CatalogQueries` (prices never come from a
client) and learns the outcome of a reservation from ``StockReserved`` or
``StockReservationFailed``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Protocol

import msgspec

from shop_kernel.messaging.events import IntegrationEvent
from shop_kernel.unit_of_work import UnitOfWork
from shop_kernel.wire import Amount


class ProductFacts(msgspec.Struct, frozen=True):
    sku: str
    name: str
    price: Amount
    is_active: bool


class CatalogQueries(Protocol):
    async def products(self, uow: UnitOfWork, skus: Iterable[str]) -> dict[str, ProductFacts]:
        """The current facts of the known skus among ``skus`` (unknown ones are left out),
        read in the transaction of the caller's open unit of work."""
        ...


class ReservedLine(msgspec.Struct, frozen=True):
    sku: str
    quantity: int


class ShortLine(msgspec.Struct, frozen=True):
    sku: str
    requested: int
    available: int


class ProductState(IntegrationEvent, frozen=True, kw_only=True):
    sku: str
    name: str
    description: str
    price: Amount
    is_active: bool
    on_hand: int
    reserved: int


class ProductCreated(ProductState, frozen=True, kw_only=True, tag="catalog.ProductCreated.v1"):
    pass


class ProductChanged(ProductState, frozen=True, kw_only=True, tag="catalog.ProductChanged.v1"):
    pass


class StockAdjusted(ProductState, frozen=True, kw_only=True, tag="catalog.StockAdjusted.v1"):
    delta: int
    reason: str


class StockReserved(IntegrationEvent, frozen=True, kw_only=True, tag="catalog.StockReserved.v1"):
    order_id: uuid.UUID
    lines: list[ReservedLine]


class StockReservationFailed(
    IntegrationEvent, frozen=True, kw_only=True, tag="catalog.StockReservationFailed.v1"
):
    order_id: uuid.UUID
    shortfalls: list[ShortLine]


class StockReleased(IntegrationEvent, frozen=True, kw_only=True, tag="catalog.StockReleased.v1"):
    order_id: uuid.UUID
    lines: list[ReservedLine]
