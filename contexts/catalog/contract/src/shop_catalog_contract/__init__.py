"""The catalog context's published language: the only code other contexts may import.

A product has one shape, :class:`ProductSnapshot`: its events carry it as it is after the
change, the product view stores it as it is, and the API answers it with its version
(:class:`VersionedProduct`). Orders asks for current prices through :class:`CatalogQueries`
(prices never come from a client) and learns the outcome of a reservation from
``StockReserved`` or ``StockReservationFailed``.

The ``.v1`` product events of earlier releases (the product's fields spread over the event)
are still read, never written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any, ClassVar, Protocol

import msgspec

from shop_kernel.messaging.events import IntegrationEvent, LegacyEvent
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


class Stock(msgspec.Struct, frozen=True, kw_only=True):
    on_hand: int
    reserved: int  # held for orders
    available: int  # on hand and not held


class ProductSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A product as it is after a change."""

    sku: str
    name: str
    description: str
    price: Amount
    stock: Stock
    is_active: bool


class VersionedProduct(ProductSnapshot, frozen=True, kw_only=True):
    """The snapshot at its version: what the product view holds and the API answers (the
    version is also its ``ETag``)."""

    version: int


class ProductEvent(IntegrationEvent, frozen=True, kw_only=True):
    product: ProductSnapshot


class ProductCreated(ProductEvent, frozen=True, kw_only=True, tag="catalog.ProductCreated.v2"):
    pass


class ProductChanged(ProductEvent, frozen=True, kw_only=True, tag="catalog.ProductChanged.v2"):
    """Its name, description, price or activity changed (in earlier releases: also the stock
    held for orders, now :class:`StockHeld`)."""


class StockAdjusted(ProductEvent, frozen=True, kw_only=True, tag="catalog.StockAdjusted.v2"):
    """Stock counted in or out: ``delta`` units, for ``reason``."""

    delta: int
    reason: str


class StockHeld(ProductEvent, frozen=True, kw_only=True, tag="catalog.StockHeld.v1"):
    """The stock held for orders changed (a reservation, or its release): the product's stock
    figures alone."""


PRODUCT_EVENTS: tuple[type[ProductEvent], ...] = (
    ProductCreated, ProductChanged, StockAdjusted, StockHeld,
)  # fmt: skip


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


# ---------------------------------------------------------------- read, no longer written


class _ProductStateV1(LegacyEvent, frozen=True, kw_only=True):
    sku: str
    name: str
    description: str
    price: Amount
    is_active: bool
    on_hand: int
    reserved: int

    def carried(self) -> dict[str, Any]:
        stock = Stock(
            on_hand=self.on_hand, reserved=self.reserved, available=self.on_hand - self.reserved
        )
        fields = msgspec.structs.asdict(self)
        return {"product": msgspec.convert({**fields, "stock": stock}, ProductSnapshot)}


class ProductCreatedV1(_ProductStateV1, frozen=True, kw_only=True, tag="catalog.ProductCreated.v1"):
    current: ClassVar[type[IntegrationEvent]] = ProductCreated


class ProductChangedV1(_ProductStateV1, frozen=True, kw_only=True, tag="catalog.ProductChanged.v1"):
    current: ClassVar[type[IntegrationEvent]] = ProductChanged


class StockAdjustedV1(_ProductStateV1, frozen=True, kw_only=True, tag="catalog.StockAdjusted.v1"):
    current: ClassVar[type[IntegrationEvent]] = StockAdjusted
    delta: int
    reason: str


LEGACY_PRODUCT_EVENTS: tuple[type[LegacyEvent], ...] = (
    ProductCreatedV1, ProductChangedV1, StockAdjustedV1,
)  # fmt: skip
