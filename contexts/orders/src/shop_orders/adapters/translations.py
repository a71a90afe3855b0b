"""How what happened to an order is told to the other contexts: its whole state, each time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import shop_orders_contract as contract
from shop_kernel.domain import DomainEvent
from shop_kernel.wire import Amount
from shop_orders.domain import model


def order_state(order: model.Order) -> dict[str, Any]:
    return {
        "aggregate_id": str(order.id),
        "aggregate_version": order.version,
        "order_id": order.id,
        "customer_id": order.customer_id,
        "status": order.status,
        "lines": [
            contract.OrderLine(
                sku=line.sku,
                name=line.name,
                unit_price=Amount.of(line.unit_price),
                quantity=line.quantity,
                line_total=Amount.of(line.total),
            )
            for line in order.lines.values()
        ],
        "total": Amount.of(order.total),
        "rejection_reason": order.rejection_reason,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }


def _state(event_type: type[contract.OrderState]) -> Callable[[Any, Any], contract.OrderState]:
    def translate(order: model.Order, _event: DomainEvent) -> contract.OrderState:
        return event_type(**order_state(order))

    return translate


def _rejected(order: model.Order, event: model.Rejected) -> contract.OrderRejected:
    return contract.OrderRejected(**order_state(order), short_skus=list(event.short_skus))


def _cancelled(order: model.Order, event: model.Cancelled) -> contract.OrderCancelled:
    return contract.OrderCancelled(**order_state(order), previous_status=event.previous)


TRANSLATIONS: Mapping[type[DomainEvent], Callable[[Any, Any], Any]] = {
    model.Started: _state(contract.OrderStarted),
    model.LinesChanged: _state(contract.OrderLinesChanged),
    model.Placed: _state(contract.OrderPlaced),
    model.Confirmed: _state(contract.OrderConfirmed),
    model.Rejected: _rejected,
    model.Cancelled: _cancelled,
}
