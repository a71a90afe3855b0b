"""Products the shop sells: their price, their stock, and the stock held for orders."""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, NewType

from shop_kernel.domain import (
    AggregateRoot,
    Conflict,
    DomainEvent,
    InvalidField,
    Money,
    NotFound,
)

NAME_MAX = 200
MAX_STOCK = 1_000_000_000  # units of one product; keeps every count storable
DESCRIPTION_MAX = 5_000
_SKU = re.compile(r"[A-Z0-9-]{3,32}")


class ProductNotFound(NotFound):
    code: ClassVar[str] = "product-not-found"

    def __init__(self, sku: str) -> None:
        super().__init__(f"no product {sku}", sku=sku)


class SkuTaken(Conflict):
    code: ClassVar[str] = "sku-taken"

    def __init__(self, sku: str) -> None:
        super().__init__(f"a product with sku {sku} exists", sku=sku)


class StockBelowReserved(Conflict):
    code: ClassVar[str] = "stock-below-reserved"

    def __init__(self, sku: str, on_hand: int, reserved: int) -> None:
        super().__init__(
            f"{sku}: stock on hand cannot go below what is reserved",
            sku=sku,
            on_hand=on_hand,
            reserved=reserved,
        )


def is_sku(raw: str) -> bool:
    return _SKU.fullmatch(raw) is not None


# A stock-keeping unit: text known to be one (``parse_sku``), which is all it carries.
Sku = NewType("Sku", str)


def parse_sku(raw: str, field_name: str = "sku") -> Sku:
    if not _SKU.fullmatch(raw):
        raise InvalidField(field_name, "a sku is 3..32 of A-Z, 0-9 and '-'")
    return Sku(raw)


@dataclass(frozen=True)
class StockLevels:
    on_hand: int
    reserved: int  # held for orders

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


def _text(raw: str, field_name: str, low: int, high: int) -> str:
    text = unicodedata.normalize("NFC", raw).strip()
    if not low <= len(text) <= high:
        raise InvalidField(field_name, f"{field_name} is {low}..{high} characters after trimming")
    if "\x00" in text:
        raise InvalidField(field_name, f"{field_name} cannot contain a null character")
    return text


def product_name(raw: str) -> str:
    return _text(raw, "name", 1, NAME_MAX)


def product_description(raw: str) -> str:
    return _text(raw, "description", 0, DESCRIPTION_MAX)


@dataclass(frozen=True, kw_only=True)
class ProductCreated(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ProductChanged(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class StockAdjusted(DomainEvent):
    delta: int
    reason: str


@dataclass(frozen=True, kw_only=True)
class StockHeld(DomainEvent):
    """Reserved stock changed (held for an order or given back)."""


@dataclass(frozen=True, kw_only=True)
class ReservationMade(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ReservationFailed(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ReservationReleased(DomainEvent):
    pass


@dataclass(kw_only=True, eq=False)
class Product(AggregateRoot):
    sku: Sku
    name: str
    description: str
    price: Money
    is_active: bool = True
    on_hand: int = 0
    reserved: int = 0

    @classmethod
    def create(cls, sku: Sku, name: str, description: str, price: Money, stock: int) -> Product:
        if not 0 <= stock <= MAX_STOCK:
            raise InvalidField("stock", f"initial stock is 0..{MAX_STOCK}")
        product = cls(
            sku=sku,
            name=product_name(name),
            description=product_description(description),
            price=price,
            on_hand=stock,
        )
        product.record(ProductCreated())
        return product

    @property
    def stock(self) -> StockLevels:
        return StockLevels(self.on_hand, self.reserved)

    @property
    def available(self) -> int:
        return self.stock.available

    def change(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        price: Money | None = None,
        is_active: bool | None = None,
    ) -> None:
        before = (self.name, self.description, self.price, self.is_active)
        if name is not None:
            self.name = product_name(name)
        if description is not None:
            self.description = product_description(description)
        if price is not None:
            self.price = price
        if is_active is not None:
            self.is_active = is_active
        if (self.name, self.description, self.price, self.is_active) != before:
            self.record(ProductChanged())

    def adjust_stock(self, delta: int, reason: str) -> None:
        if self.on_hand + delta > MAX_STOCK:
            raise InvalidField("adjustment", f"stock on hand cannot exceed {MAX_STOCK}")
        if self.on_hand + delta < self.reserved:
            raise StockBelowReserved(str(self.sku), self.on_hand + delta, self.reserved)
        self.on_hand += delta
        self.record(StockAdjusted(delta=delta, reason=reason))

    def hold(self, quantity: int) -> None:
        """Reserve ``quantity``; the caller has checked that it is available."""
        if not 0 < quantity <= self.available:
            raise ValueError(f"{self.sku}: cannot hold {quantity} of {self.available}")
        self.reserved += quantity
        self.record(StockHeld())

    def let_go(self, quantity: int) -> None:
        if not 0 < quantity <= self.reserved:
            raise ValueError(f"{self.sku}: cannot release {quantity} of {self.reserved}")
        self.reserved -= quantity
        self.record(StockHeld())


@dataclass(frozen=True)
class Shortfall:
    sku: str
    requested: int
    available: int


@dataclass(kw_only=True, eq=False)
class StockReservation(AggregateRoot):
    """The stock held for one order: all of its lines, or none of them."""

    order_id: uuid.UUID
    lines: dict[str, int]
    status: str  # "reserved", "failed" or "released"
    shortfalls: list[Shortfall] = field(default_factory=list[Shortfall])

    @classmethod
    def attempt(
        cls,
        order_id: uuid.UUID,
        lines: Mapping[str, int],
        products: Mapping[str, Product],
    ) -> StockReservation:
        """Hold every line or nothing; a missing or inactive product is a shortfall too."""
        shortfalls = [
            Shortfall(sku, quantity, _available(products.get(sku)))
            for sku, quantity in sorted(lines.items())
            if _available(products.get(sku)) < quantity
        ]
        if shortfalls:
            failed = cls(
                order_id=order_id, lines=dict(lines), status="failed", shortfalls=shortfalls
            )
            failed.record(ReservationFailed())
            return failed
        for sku, quantity in lines.items():
            products[sku].hold(quantity)
        made = cls(order_id=order_id, lines=dict(lines), status="reserved")
        made.record(ReservationMade())
        return made

    def release(self, products: Mapping[str, Product]) -> bool:
        """Give back exactly what was held, once; False when there was nothing to give back."""
        if self.status != "reserved":
            return False
        for sku, quantity in self.lines.items():
            products[sku].let_go(quantity)
        self.status = "released"
        self.record(ReservationReleased())
        return True


def _available(product: Product | None) -> int:
    return product.available if product is not None and product.is_active else 0


def merge_lines(lines: Sequence[tuple[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for sku, quantity in lines:
        merged[sku] = merged.get(sku, 0) + quantity
    return merged
