"""The orders context's published language: the only code other contexts may import.

An order has one shape, :class:`OrderSnapshot`: every order event carries it as it is after
the change (event-carried state), the order view stores it as it is, and the API answers
it with its version (:class:`VersionedOrder`). Catalog reserves stock when an order is
placed and releases it when the order is cancelled; notifications writes to the customer
when an order is confirmed, rejected or cancelled.

The ``.v1`` shapes of earlier releases (the order's fields spread over the event) are still
read, never written.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal

import msgspec

from shop_kernel.messaging.events import IntegrationEvent, LegacyEvent
from shop_kernel.wire import Amount

OrderStatus = Literal["draft", "pending", "confirmed", "rejected", "cancelled"]


class OrderLine(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    name: str
    unit_price: Amount
    quantity: int
    line_total: Amount


class OrderSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """An order as it is after a change. ``rejection_reason`` is None unless rejected."""

    id: uuid.UUID
    customer_id: uuid.UUID
    status: OrderStatus
    lines: list[OrderLine]
    total: Amount
    rejection_reason: str | None
    created_at: datetime
    updated_at: datetime


class VersionedOrder(OrderSnapshot, frozen=True, kw_only=True):
    """The snapshot at its version: what the order view holds and the API answers (the
    version is also its ``ETag``)."""

    version: int


class OrderEvent(IntegrationEvent, frozen=True, kw_only=True):
    order: OrderSnapshot


class OrderStarted(OrderEvent, frozen=True, kw_only=True, tag="orders.OrderStarted.v2"):
    """A new draft (possibly with lines already)."""


class OrderLinesChanged(OrderEvent, frozen=True, kw_only=True, tag="orders.OrderLinesChanged.v2"):
    """A draft's lines were added, changed or removed."""


class OrderPlaced(OrderEvent, frozen=True, kw_only=True, tag="orders.OrderPlaced.v3"):
    """The customer confirmed the order: it is pending until stock is reserved for its lines."""


class OrderConfirmed(OrderEvent, frozen=True, kw_only=True, tag="orders.OrderConfirmed.v2"):
    """Stock is reserved for every line."""


class OrderRejected(OrderEvent, frozen=True, kw_only=True, tag="orders.OrderRejected.v2"):
    """Stock was short for ``short_skus`` (none: it never answered in time); nothing is
    reserved."""

    short_skus: list[str]


class OrderCancelled(OrderEvent, frozen=True, kw_only=True, tag="orders.OrderCancelled.v3"):
    """Cancelled from ``previous_status``; catalog gives back whatever the order holds."""

    previous_status: OrderStatus


ORDER_EVENTS: tuple[type[OrderEvent], ...] = (
    OrderStarted, OrderLinesChanged, OrderPlaced, OrderConfirmed, OrderRejected, OrderCancelled,
)  # fmt: skip


# ---------------------------------------------------------------- read, no longer written


class _OrderStateV1(LegacyEvent, frozen=True, kw_only=True):
    order_id: uuid.UUID
    customer_id: uuid.UUID
    status: OrderStatus
    lines: list[OrderLine]
    total: Amount
    rejection_reason: str | None
    created_at: datetime
    updated_at: datetime

    def carried(self) -> dict[str, Any]:
        fields = msgspec.structs.asdict(self)
        return {"order": msgspec.convert({**fields, "id": self.order_id}, OrderSnapshot)}


class OrderStartedV1(_OrderStateV1, frozen=True, kw_only=True, tag="orders.OrderStarted.v1"):
    current: ClassVar[type[IntegrationEvent]] = OrderStarted


class OrderLinesChangedV1(
    _OrderStateV1, frozen=True, kw_only=True, tag="orders.OrderLinesChanged.v1"
):
    current: ClassVar[type[IntegrationEvent]] = OrderLinesChanged


class OrderPlacedV2(_OrderStateV1, frozen=True, kw_only=True, tag="orders.OrderPlaced.v2"):
    current: ClassVar[type[IntegrationEvent]] = OrderPlaced


class OrderConfirmedV1(_OrderStateV1, frozen=True, kw_only=True, tag="orders.OrderConfirmed.v1"):
    current: ClassVar[type[IntegrationEvent]] = OrderConfirmed


class OrderRejectedV1(_OrderStateV1, frozen=True, kw_only=True, tag="orders.OrderRejected.v1"):
    current: ClassVar[type[IntegrationEvent]] = OrderRejected
    short_skus: list[str]


class OrderCancelledV2(_OrderStateV1, frozen=True, kw_only=True, tag="orders.OrderCancelled.v2"):
    current: ClassVar[type[IntegrationEvent]] = OrderCancelled
    previous_status: OrderStatus


LEGACY_ORDER_EVENTS: tuple[type[LegacyEvent], ...] = (
    OrderStartedV1, OrderLinesChangedV1, OrderPlacedV2, OrderConfirmedV1, OrderRejectedV1,
    OrderCancelledV2,
)  # fmt: skip
