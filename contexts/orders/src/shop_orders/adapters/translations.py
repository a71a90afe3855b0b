"""How an order is told to the other contexts: its snapshot (the one translation of an order
into its published shape), carried by each of its events."""

from __future__ import annotations

import shop_orders_contract as contract
from shop_kernel.snapshots import snapshot_of, state_events
from shop_orders.domain import model


def order_snapshot(order: model.Order) -> contract.OrderSnapshot:
    return snapshot_of(order, contract.OrderSnapshot)


TRANSLATIONS = state_events(
    "order",
    order_snapshot,
    {
        model.Started: contract.OrderStarted,
        model.LinesChanged: contract.OrderLinesChanged,
        model.Placed: contract.OrderPlaced,
        model.Confirmed: contract.OrderConfirmed,
        model.Rejected: contract.OrderRejected,
        model.Cancelled: contract.OrderCancelled,
    },
)
