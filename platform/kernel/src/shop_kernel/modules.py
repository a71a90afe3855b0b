"""What a bounded context hands to the composition root: its parts, routes and schema."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from beanie import Document
from litestar.types import ControllerRouterHandler

from shop_kernel.di import Wiring
from shop_kernel.domain import AggregateRoot, DomainEvent
from shop_kernel.messaging.events import IntegrationEvent
from shop_kernel.messaging.subscriptions import Subscription
from shop_kernel.migrations import MigrationTarget
from shop_kernel.schedules import Schedule
from shop_kernel.settings import Settings, SettingsSection
from shop_kernel.snapshots import Translation
from shop_kernel.views import ReadView


def _register_nothing(_wiring: Wiring) -> None:
    return None


Route = tuple[str, str]  # (method, path), e.g. ("POST", "/auth/token")


def _no_limits(_settings: Settings) -> Mapping[Route, int]:
    return {}


@dataclass(frozen=True, kw_only=True)
class ContextModule:
    """One context's wiring, declared in its ``module.py`` and read only by the platform."""

    name: str
    migrations: MigrationTarget
    # Its own settings, read from SHOP_* variables with the service's (``settings.section``).
    settings: type[SettingsSection] | None = None
    register: Callable[[Wiring], None] = _register_nothing
    # The query facades (Protocols of its contract, or the kernel's) ``register`` puts in the
    # container for the others ...
    provides: Sequence[type[Any]] = ()
    # ... and the other contexts' facades it uses, at registration or later: the platform
    # registers their providers first, and refuses to start without one.
    needs: Sequence[type[Any]] = ()
    route_handlers: Sequence[ControllerRouterHandler] = ()
    # Its routes that anyone may call without a token (signing in, registering) ...
    public_routes: Sequence[Route] = ()
    # ... and those limited per client address: {route: requests a minute}, from settings.
    rate_limits: Callable[[Settings], Mapping[Route, int]] = _no_limits
    document_models: Sequence[type[Document]] = field(default_factory=tuple[type[Document], ...])
    # The integration events this context publishes (its contract's event types) ...
    events: Sequence[type[IntegrationEvent]] = ()
    # ... how its aggregates' domain events become them: {DomainEventType: fn(aggregate, event)}
    translations: Mapping[type[DomainEvent], Translation] = field(
        default_factory=dict[type[DomainEvent], Translation]
    )
    # ... and what it does when other contexts publish theirs.
    subscriptions: Sequence[Subscription[Any]] = ()
    # The read views it keeps in MongoDB, rebuildable from its write store.
    views: Sequence[ReadView] = ()
    # Work the worker runs on a clock (deadlines), one process at a time.
    schedules: Sequence[Schedule] = ()


def translate_with(
    modules: Sequence[ContextModule],
) -> Callable[[AggregateRoot, DomainEvent], IntegrationEvent | None]:
    """One translator for the whole service: looks the domain event's type up once."""
    table: dict[type[DomainEvent], Translation] = {}
    for module in modules:
        table.update(module.translations)

    def translate(aggregate: AggregateRoot, event: DomainEvent) -> IntegrationEvent | None:
        translation = table.get(type(event))
        return None if translation is None else translation(aggregate, event)

    return translate
