"""What a context declares to react to events: handlers (own transaction, inbox) and projectors.

A context lists them in its ``module.py`` with :func:`subscribe` and :func:`project`; the
platform routes each one to a Dramatiq actor on the context's own queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from shop_kernel.messaging.events import IntegrationEvent, event_tag
from shop_kernel.unit_of_work import UnitOfWork

E_contra = TypeVar("E_contra", bound=IntegrationEvent, contravariant=True)
EventT = TypeVar("EventT", bound=IntegrationEvent)


class EventHandler(Protocol[E_contra]):
    """Reacts to an event inside its own unit of work; the inbox makes a redelivery a no-op."""

    async def __call__(self, event: E_contra, uow: UnitOfWork) -> None: ...


class EventProjector(Protocol[E_contra]):
    """Keeps a read view current; idempotent by the event's aggregate_version."""

    async def __call__(self, event: E_contra) -> None: ...


Kind = Literal["handler", "projector"]


@dataclass(frozen=True)
class Subscription(Generic[EventT]):
    event_type: type[EventT]
    reactor: type[Any]  # a class the container builds; its instances are handlers or projectors
    kind: Kind


def subscribe(
    event_type: type[EventT], handler: type[EventHandler[EventT]]
) -> Subscription[EventT]:
    return Subscription(event_type, handler, "handler")


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
    def queue_name(self) -> str:
        suffix = "-projections" if self.subscription.kind == "projector" else ""
        return f"{self.context}{suffix}"

    @property
    def event_tag(self) -> str:
        return event_tag(self.subscription.event_type)
