"""What a context declares to react to events: handlers (inbox, a transaction) and projectors.

A context lists them in its ``module.py`` with :func:`subscribe` and :func:`project`; the
platform routes each one to a Dramatiq actor on the context's own queue.

A handler is given a unit of work and hands it to the use case it calls. By default it is
the delivery's own: the use case's change, its events and the record that the event was
handled commit together. A subscription whose effect leaves the system before it can be
rolled back (a mail sent) says so where it is declared, ``subscribe(..., transaction="own")``:
its handler gets a unit of work of its own, whose commits do not wait for the delivery's.
A subscription whose changes lock nothing that another delivery or a request waits for (rows
of its own, appended records, an aggregate only its event changes) may say
``transaction="batch"``: a batch of its events then costs one transaction, not one each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from shop_kernel.messaging.events import IntegrationEvent, event_tag
from shop_kernel.messaging.registry import BATCH_SUFFIX
from shop_kernel.unit_of_work import UnitOfWork

E_contra = TypeVar("E_contra", bound=IntegrationEvent, contravariant=True)
EventT = TypeVar("EventT", bound=IntegrationEvent)


class EventHandler(Protocol[E_contra]):
    """Reacts to an event with the unit of work it is given (the inbox makes a redelivery a
    no-op): it passes ``uow`` to the use case it calls."""

    async def __call__(self, event: E_contra, uow: UnitOfWork) -> None: ...


class EventProjector(Protocol[E_contra]):
    """Keeps a read view current from a batch of events (in the order they were committed,
    as far as one relay batch goes); idempotent by each event's aggregate_version, so a batch
    may repeat events, bring them out of order, or overlap another batch."""

    async def __call__(self, events: Sequence[E_contra]) -> None: ...


Kind = Literal["handler", "projector"]
# Whose unit of work a handler is given: the delivery's, one for each event (the default);
# the delivery's, one for a whole batch; or one of its own (see above).
TransactionKind = Literal["delivery", "batch", "own"]


@dataclass(frozen=True)
class Subscription(Generic[EventT]):
    event_type: type[EventT]
    reactor: type[Any]  # a class the container builds; its instances are handlers or projectors
    kind: Kind
    transaction: TransactionKind = "delivery"


def subscribe(
    event_type: type[EventT],
    handler: type[EventHandler[EventT]],
    *,
    transaction: TransactionKind = "delivery",
) -> Subscription[EventT]:
    return Subscription(event_type, handler, "handler", transaction)


def project(
    event_type: type[EventT], projector: type[EventProjector[EventT]]
) -> Subscription[EventT]:
    return Subscription(event_type, projector, "projector")


@dataclass(frozen=True)
class Route:
    """A subscription placed in its context: the subscriber's name, its actor and its queue."""

    context: str
    subscription: Subscription[Any]

    @property
    def subscriber(self) -> str:
        return f"{self.context}.{self.subscription.reactor.__name__}"

    @property
    def actor_name(self) -> str:
        return self.subscriber

    @property
    def batched(self) -> bool:
        """Whether the subscriber takes several events a message: a projector (one
        ``bulk_write`` for the batch), and a handler working in its delivery's transaction
        (one message for the batch, a transaction per event or one for all). A subscription
        with a transaction of its own (a mail) takes them one message each."""
        return self.subscription.kind == "projector" or self.subscription.transaction != "own"

    @property
    def batch_actor_name(self) -> str:
        """The actor of its batches: a release before batches has none of that name, so its
        workers hand such messages back rather than read several events as one."""
        return f"{self.subscriber}{BATCH_SUFFIX}"

    @property
    def queue_name(self) -> str:
        suffix = "-projections" if self.projects else ""
        return f"{self.context}{suffix}"

    @property
    def projects(self) -> bool:
        """Whether it writes a read view (its queue is its context's ``-projections``)."""
        return self.subscription.kind == "projector"

    @property
    def event_tag(self) -> str:
        return event_tag(self.subscription.event_type)
