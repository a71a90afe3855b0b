"""The orders context's published language: the only module other contexts may import.

Catalog reserves stock when an order is placed and releases it when the order is cancelled;
both events name the order and (for placing) its lines.
"""

from __future__ import annotations

import uuid

import msgspec

from shop_kernel.messaging.events import IntegrationEvent


class PlacedLine(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    sku: str
    quantity: int


class OrderPlaced(IntegrationEvent, frozen=True, kw_only=True, tag="orders.OrderPlaced.v1"):
    order_id: uuid.UUID
    customer_id: uuid.UUID
    lines: list[PlacedLine]


class OrderCancelled(IntegrationEvent, frozen=True, kw_only=True, tag="orders.OrderCancelled.v1"):
    order_id: uuid.UUID
    customer_id: uuid.UUID
