"""One email caused by one event: its delivery, from pending to sent or failed.

A delivery is identified by (event_id, template): an event redelivered finds its delivery
and sends nothing twice. Before each send the attempt is recorded (and committed) together
with a lease, so that a second delivery of the same event does not send alongside it, and a
crash between the send and its outcome leaves a visible trace (attempts > 0, still pending)
that the next retry takes up once the lease is over.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from shop_kernel.domain import AggregateRoot, Conflict

Template = Literal[
    "welcome", "order_confirmed", "order_rejected", "order_cancelled", "password_reset"
]
Status = Literal["pending", "sent", "failed"]
TEMPLATES: tuple[Template, ...] = (
    "welcome",
    "order_confirmed",
    "order_rejected",
    "order_cancelled",
)
ERROR_MAX = 500
ERASED = "the recipient's account was erased"
NOT_WANTED = "the mail is no longer wanted (the account cannot use it)"


def _now() -> datetime:
    return datetime.now(UTC)


class DeliveryInFlight(Conflict):
    """Another delivery of the same event holds the lease: it is sending right now."""

    def __init__(self, delivery_id: uuid.UUID) -> None:
        super().__init__("this email is being sent by another delivery", id=str(delivery_id))


@dataclass(kw_only=True, eq=False)
class Delivery(AggregateRoot):
    id: uuid.UUID
    event_id: uuid.UUID
    template: Template
    user_id: uuid.UUID
    recipient: str | None = None
    status: Status = "pending"
    attempts: int = 0
    last_error: str | None = None
    lease_until: datetime | None = None
    created_at: datetime = field(default_factory=_now)
    sent_at: datetime | None = None

    @classmethod
    def of(cls, event_id: uuid.UUID, template: Template, user_id: uuid.UUID) -> Delivery:
        return cls(id=uuid.uuid4(), event_id=event_id, template=template, user_id=user_id)

    @property
    def settled(self) -> bool:
        return self.status != "pending"

    @property
    def dropped_for_erasure(self) -> bool:
        """The recipient's account was erased before this mail went out."""
        return self.status == "failed" and self.last_error == ERASED

    def attempt(self, recipient: str, *, lease: timedelta, now: datetime | None = None) -> None:
        """Record the next attempt to send to ``recipient``; refused while a lease runs."""
        now = now or _now()
        if self.settled:
            raise Conflict(f"this email is already {self.status}", id=str(self.id))
        if self.lease_until is not None and self.lease_until > now:
            raise DeliveryInFlight(self.id)
        self.recipient = recipient
        self.attempts += 1
        self.lease_until = now + lease

    def sent(self, now: datetime | None = None) -> None:
        self.status, self.sent_at = "sent", now or _now()
        self.last_error, self.lease_until = None, None

    def failed_for_now(self, error: str) -> None:
        """A transient failure: the next retry may send at once."""
        self.last_error, self.lease_until = error[:ERROR_MAX], None

    def failed(self, error: str) -> None:
        """A permanent failure: never sent, never retried."""
        self.status, self.last_error, self.lease_until = "failed", error[:ERROR_MAX], None

    def forget_recipient(self) -> None:
        """The recipient's account was erased: drop the address (also from the last error),
        and the email if unsent."""
        if self.recipient is not None and self.last_error is not None:
            self.last_error = redacted(self.last_error, self.recipient)
        self.recipient = None
        if self.status == "pending":
            self.failed(ERASED)


_ADDRESS = re.compile(r"[^\s<>\"'(),;:@]+@[^\s<>\"'(),;:]+")


def redacted(error: str, address: str) -> str:
    """An error as it may be kept and logged: no address in it (a mail server's refusal
    usually names the recipient), whatever the server made of it."""
    return _ADDRESS.sub("<address>", error.replace(address, "<address>"))
