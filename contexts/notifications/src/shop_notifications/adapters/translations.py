"""How a delivery is shown to others: its snapshot (the one translation of a delivery into
its published shape). Notifications publishes no events."""

from __future__ import annotations

from shop_kernel.snapshots import snapshot_of
from shop_notifications.domain.model import Delivery
from shop_notifications_contract import DeliverySnapshot


def delivery_snapshot(delivery: Delivery) -> DeliverySnapshot:
    return snapshot_of(delivery, DeliverySnapshot)
