"""Wiring of the event backbone: the contexts' events, routes, actors and relay, in one place."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import dramatiq
import punq
from dramatiq.asyncio import async_to_sync
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel import tracing
from shop_kernel.di import instantiated, resolved
from shop_kernel.log import get_logger
from shop_kernel.messaging.broker import create_broker, enqueue_many
from shop_kernel.messaging.deferral import DeferUnfamiliar
from shop_kernel.messaging.delivery import Delivery
from shop_kernel.messaging.events import EventDecodeError, EventRegistry, tag_of
from shop_kernel.messaging.registry import (
    TRACEPARENT,
    TRACEPARENTS,
    Registration,
    Release,
    RouteEntry,
)
from shop_kernel.messaging.relay import Relay
from shop_kernel.messaging.retries import error_of
from shop_kernel.messaging.subscriptions import Route
from shop_kernel.modules import ContextModule
from shop_kernel.outages import is_outage
from shop_kernel.redis_client import redis_url
from shop_kernel.settings import Settings
from shop_kernel.sql import database_url
from shop_kernel.unit_of_work import Transactions
from shop_platform.resources import Resources

log = get_logger(__name__)

# Which subscribers a worker program serves (`shop worker --serve`).
Subscribers = Literal["all", "handlers", "projections"]
SUBSCRIBERS: tuple[Subscribers, ...] = ("all", "handlers", "projections")


@dataclass(frozen=True)
class Backbone:
    registry: EventRegistry
    routes: tuple[Route, ...]

    @classmethod
    def of(cls, modules: Sequence[ContextModule]) -> Backbone:
        registry = EventRegistry(event for module in modules for event in module.events)
        routes = tuple(
            Route(module.name, subscription)
            for module in modules
            for subscription in module.subscriptions
        )
        for route in routes:
            registry.add(route.subscription.event_type)
        return cls(registry, routes)

    @property
    def queues(self) -> list[str]:
        return self.queues_serving("all")

    def queues_serving(self, subscribers: Subscribers) -> list[str]:
        """The queues of one kind of subscriber: ``handlers`` (the saga, the mails),
        ``projections`` (the read views), or ``all``."""
        return sorted(
            {
                route.queue_name
                for route in self.routes
                if subscribers == "all" or route.projects == (subscribers == "projections")
            }
        )

    def broker(self, settings: Settings, *, metrics: bool = False) -> RedisBroker:
        broker = create_broker(
            redis_url(settings),
            max_retries=settings.event_max_retries,
            min_backoff_ms=settings.event_min_backoff_ms,
            time_limit_ms=settings.event_time_limit_ms,
            outage_max_age_ms=int(settings.event_outage_max_age * 1000),
            redis_timeout_s=settings.redis_timeout,
        )
        if metrics:
            # Per-actor (so per-subscriber) totals, errors, retries, rejects (dead letters)
            # and durations, served by one forked exposition server for all processes.
            from shop_platform.worker_metrics import WorkerPrometheus  # noqa: PLC0415

            broker.add_middleware(WorkerPrometheus())
        if tracing.enabled():
            # A delivery reads its events' traceparents from its message's options.
            broker.add_middleware(CurrentMessage())
        # Last, so that every other middleware has seen the message it may hand back.
        broker.add_middleware(
            DeferUnfamiliar(self.handled, max_age_ms=int(settings.event_outage_max_age * 1000))
        )
        return broker

    def declare_actors(self, broker: RedisBroker, container: Callable[[], punq.Container]) -> None:
        """One actor per subscriber (a reactor may take several event types), and one for
        its batches where it takes them; each delivery resolves its reactor from the live
        container."""
        declared: set[str] = set()
        for route in self.routes:
            if route.actor_name in declared:
                continue
            declared.add(route.actor_name)
            deliver = _deliverer(self.registry, route, container, broker)
            names = [route.actor_name, *([route.batch_actor_name] if route.batched else [])]
            for name in names:
                dramatiq.Actor(
                    deliver,
                    broker=broker,
                    actor_name=name,
                    queue_name=route.queue_name,
                    priority=0,
                    options={"throws": (EventDecodeError,)},
                )

    def relay(self, settings: Settings, resources: Resources, broker: RedisBroker) -> Relay:
        return Relay(
            resources.engine,
            database_url(settings),
            lambda messages: enqueue_many(broker, messages),
            release=self.release,
            release_ttl=release_ttl(settings),
            batch_size=settings.relay_batch_size,
        )

    def tags(self, route: Route) -> list[str]:
        """The tags a route takes: its event type's, and those of the earlier shapes of it
        that are still read (and become it as they are decoded)."""
        return [route.event_tag, *self.registry.legacy_tags(route.subscription.event_type)]

    @property
    def release(self) -> Release:
        """What this build declares to the registry: its routes and the event types it knows."""
        entries = (
            RouteEntry(tag, route.subscriber, route.queue_name, route.batch_actor_name, True)
            if route.batched
            else RouteEntry(tag, route.subscriber, route.queue_name, route.actor_name)
            for route in self.routes
            for tag in self.tags(route)
        )
        return Release.of(entries, self.registry.tags())

    def registration(self, settings: Settings, engine: AsyncEngine, *, role: str) -> Registration:
        return Registration(engine, self.release, role=role, ttl=release_ttl(settings))

    @property
    def handled(self) -> dict[str, frozenset[str]]:
        """Per actor, the event types it handles here (anything else is deferred)."""
        found: dict[str, set[str]] = {}
        for route in self.routes:
            found.setdefault(route.actor_name, set()).update(self.tags(route))
            if route.batched:
                found.setdefault(route.batch_actor_name, set()).update(self.tags(route))
        return {actor: frozenset(types) for actor, types in found.items()}


def release_ttl(settings: Settings) -> timedelta:
    """How long a release whose processes went silent (crashed, no goodbye) still counts as
    running: as long as an outage is waited out."""
    return timedelta(seconds=settings.event_outage_max_age)


def _deliverer(
    registry: EventRegistry,
    route: Route,
    container: Callable[[], punq.Container],
    broker: RedisBroker,
) -> Callable[..., Any]:
    # Built once per actor. The container only exists once the worker's stores are open, so
    # the reactor is built on the first delivery and then reused (reactors keep no per-event
    # state); each delivery opens a unit of work of its own.
    built: tuple[punq.Container, Any] | None = None

    def reactor(reactor_type: type[Any]) -> Any:
        nonlocal built
        live = container()
        if built is None or built[0] is not live:
            built = (live, instantiated(live, reactor_type))
        return built[1]

    def transactions() -> Transactions:
        return resolved(container(), Transactions)

    delivery = Delivery(registry, transactions, reactor)

    async def deliver_traced(payloads: tuple[str, ...], traceparents: list[str | None]) -> None:
        try:
            await delivery.deliver(route, payloads, traceparents)
        except Exception as failure:
            if len(payloads) == 1 or is_outage(failure):
                raise  # retried as it is: an outage waits, a failure spends the budget
            # One of the batch's events fails (or cannot be read): each goes on alone,
            # with retries and a dead letter of its own, and the others are not held up.
            log.warning(
                "batch failed; its events go on one by one", subscriber=route.subscriber,
                events=len(payloads), error=error_of(failure),
            )  # fmt: skip
            singles = [
                dramatiq.Message[None](
                    queue_name=route.queue_name, actor_name=route.actor_name,
                    args=(payload,), kwargs={},
                    options={"event_type": tag_of(payload), TRACEPARENT: traceparent},
                )
                for payload, traceparent in zip(
                    payloads, [*traceparents, *[None] * len(payloads)], strict=False
                )
            ]  # fmt: skip
            await asyncio.to_thread(enqueue_many, broker, singles)

    run = async_to_sync(deliver_traced)

    # The actor runs on a worker thread, where the message being processed is known; its
    # coroutine runs on the event loop's thread, which is given what it needs of it.
    def deliver(*payloads: str) -> None:
        run(payloads, _traceparents() if tracing.enabled() else [])

    deliver.__name__ = route.actor_name.replace(".", "_")
    return deliver


def _traceparents() -> list[str | None]:
    """The traceparents of the current message's events: a batch's, one each, or the one
    of a single event's message (none from a release that did not trace)."""
    message = CurrentMessage.get_current_message()
    if message is None:
        return []
    options = message.options
    batch: list[str | None] | None = options.get(TRACEPARENTS)
    return batch if batch is not None else [options.get(TRACEPARENT)]
