"""What the notification use cases need from the outside world."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from shop_kernel.outages import Unavailable
from shop_kernel.unit_of_work import UnitOfWork
from shop_notifications.domain.model import Delivery, Template


@dataclass(frozen=True)
class Recipient:
    """Who a customer is to the mails, asked for when a mail is written (never kept here)."""

    user_id: uuid.UUID
    email: str
    name: str


@dataclass(frozen=True)
class Mail:
    message_id: str
    to: str
    subject: str
    text: str
    html: str


class TransientFailure(Unavailable):
    """The mail may go through later (connection refused, timeout, a 4xx reply): an outage
    of the mail server, waited out as long as the backbone waits out any outage."""


class PermanentFailure(Exception):
    """The mail will never go through as it is (a 5xx reply, a refused recipient)."""


Accepted = Callable[[], Awaitable[None]]


class Mailer(Protocol):
    async def send(self, mail: Mail, accepted: Accepted) -> None:
        """Hand ``mail`` over and await ``accepted`` the moment it is taken (before anything
        else, such as saying goodbye), or raise TransientFailure or PermanentFailure."""
        ...


# How an attempt ended: sent, refused for good, or to be tried again.
AttemptOutcome = Literal["sent", "failed", "later"]
RecordSent = Callable[["Delivery"], Awaitable[None]]


class SentRecords(Protocol):
    def ready(self) -> AbstractAsyncContextManager[RecordSent]:
        """A way to record "sent" at once, made ready before the mail leaves."""
        ...


class Composer(Protocol):
    def compose(
        self, delivery: Delivery, recipient: Recipient, facts: Mapping[str, Any]
    ) -> Mail: ...


class Deliveries(Protocol):
    """The delivery log, in the transaction of the unit of work each call is given."""

    async def claim(
        self, uow: UnitOfWork, event_id: uuid.UUID, template: Template, user_id: uuid.UUID
    ) -> Delivery:
        """The delivery of (event, template), created if new, locked until the end."""
        ...

    async def lock(self, uow: UnitOfWork, delivery_id: uuid.UUID) -> Delivery: ...

    async def of_user(self, uow: UnitOfWork, user_id: uuid.UUID) -> list[Delivery]:
        """Every delivery to the user, locked."""
        ...

    async def save(self, uow: UnitOfWork, delivery: Delivery) -> None: ...

    async def log_attempt(self, uow: UnitOfWork, delivery: Delivery) -> None:
        """Record that the attempt ``delivery.attempts`` starts now, and who makes it."""
        ...

    async def log_outcome(
        self, uow: UnitOfWork, delivery: Delivery, outcome: AttemptOutcome
    ) -> None: ...


class Recipients(Protocol):
    async def get(self, user_id: uuid.UUID) -> Recipient | None:
        """The account's address as it is now; None once it is erased (or never was)."""
        ...
