"""The notifications context's published language: the only code others may import.

Notifications publishes no events; it shows its deliveries (``GET /notifications``) in one
shape, :class:`DeliverySnapshot`: one email caused by one event, as it is now.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import msgspec

Template = Literal[
    "welcome", "order_confirmed", "order_rejected", "order_cancelled", "password_reset"
]
DeliveryStatus = Literal["pending", "sent", "failed"]


class DeliverySnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """``recipient`` is None once the account is erased (and before the first attempt)."""

    id: uuid.UUID
    event_id: uuid.UUID
    template: Template
    recipient: str | None
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    sent_at: datetime | None
