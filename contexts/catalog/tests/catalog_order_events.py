"""Orders' events as catalog's tests need them: an order's lines, the rest plausible."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shop_kernel.wire import Amount
from shop_orders_contract import (
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    OrderSnapshot,
    OrderStatus,
)

UNIT = Amount(100, "EUR")


def _order(
    order_id: uuid.UUID, customer_id: uuid.UUID, lines: list[tuple[str, int]], status: OrderStatus
) -> OrderSnapshot:
    now = datetime.now(UTC)
    total = sum(quantity for _, quantity in lines) * UNIT.amount
    return OrderSnapshot(
        id=order_id, customer_id=customer_id, status=status,
        lines=[
            OrderLine(sku=sku, name=sku, unit_price=UNIT, quantity=quantity,
                      line_total=Amount(quantity * UNIT.amount, UNIT.currency))
            for sku, quantity in lines
        ],
        total=Amount(total, UNIT.currency), rejection_reason=None,
        created_at=now, updated_at=now,
    )  # fmt: skip


def order_placed(
    order_id: uuid.UUID, customer_id: uuid.UUID, lines: list[tuple[str, int]], version: int = 2
) -> OrderPlaced:
    order = _order(order_id, customer_id, lines, "pending")
    return OrderPlaced(aggregate_id=str(order_id), aggregate_version=version, order=order)


def order_cancelled(
    order_id: uuid.UUID, customer_id: uuid.UUID, version: int = 3
) -> OrderCancelled:
    order = _order(order_id, customer_id, [], "cancelled")
    return OrderCancelled(
        aggregate_id=str(order_id), aggregate_version=version, order=order,
        previous_status="pending",
    )  # fmt: skip
