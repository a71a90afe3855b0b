"""The orders context's published language: the only code other contexts may import.

Every order event carries the order's whole state after the change (event-carried state):
catalog reserves stock when an order is placed and releases it when the order is cancelled;
notifications writes to the customer when an order is confirmed, rejected or cancelled; the
order view is projected from the same events.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec

from shop_kernel.messaging.events import IntegrationEvent
from shop_kernel.wire import Amount

OrderStatus = Literal["draft", "pending", "confirmed", "rejected", "cancelled"]


class OrderLine(msgspec.Struct, frozen=True, kw_only=True):
    sku: str
    name: str
    unit_price: Amount
    quantity: int
    line_total: Amount


class OrderState(IntegrationEvent, frozen=True, kw_only=True):
    order_id: uuid.UUID
    customer_id: uuid.UUID
    status: OrderStatus
    lines: list[OrderLine]
    total: Amount
    rejection_reason: str | None
    created_at: datetime
    updated_at: datetime


class OrderStarted(OrderState, frozen=True, kw_only=True, tag="orders.OrderStarted.v1"):
    """A new draft (possibly with lines already)."""


class OrderLinesChanged(OrderState, frozen=True, kw_only=True, tag="orders.OrderLinesChanged.v1"):
    """A draft's lines were added, changed or removed."""


class OrderPlaced(OrderState, frozen=True, kw_only=True, tag="orders.OrderPlaced.v2"):
    """The customer confirmed the order: it is pending until stock is reserved for its lines."""


class OrderConfirmed(OrderState, frozen=True, kw_only=True, tag="orders.OrderConfirmed.v1"):
    """Stock is reserved for every line."""


class OrderRejected(OrderState, frozen=True, kw_only=True, tag="orders.OrderRejected.v1"):
    """Stock was short for ``short_skus``; nothing is reserved."""

    short_skus: list[str]


class OrderCancelled(OrderState, frozen=True, kw_only=True, tag="orders.OrderCancelled.v2"):
    """Cancelled from ``previous_status``; catalog gives back whatever the order holds."""

    previous_status: OrderStatus
