"""The composition root builds one container from settings and lets every context register."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest
from sqlalchemy import text

from shop_catalog.application.products import ProductAdmin
from shop_catalog_contract import CatalogQueries
from shop_kernel.di import Wiring
from shop_kernel.domain import Money
from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings
from shop_kernel.unit_of_work import Transactions
from shop_notifications.application.mailing import Mailing
from shop_orders.application.ordering import Caller, Item, Ordering
from shop_platform import container as composition
from shop_platform import contexts
from shop_platform.backbone import Backbone
from shop_platform.container import CompositionError, registration_order
from shop_platform.contexts import CONTEXTS, installed_contexts
from shop_platform.resources import Resources, open_resources
from shop_users_contract import UserContacts


@pytest.fixture
async def resources(shop_settings: Settings) -> AsyncIterator[Resources]:
    async with open_resources(shop_settings, role="test") as opened:
        yield opened


def test_every_installed_context_is_part_of_the_service() -> None:
    # The workspace installs all four; each declares itself by entry point.
    assert [c.name for c in CONTEXTS] == ["catalog", "notifications", "orders", "users"]
    assert installed_contexts() == CONTEXTS


@dataclass(frozen=True)
class _EntryPoint:
    name: str
    value: str
    loaded: object

    def load(self) -> object:
        return self.loaded


def _declared(monkeypatch: pytest.MonkeyPatch, *points: _EntryPoint) -> None:
    def entry_points(*, group: str) -> tuple[_EntryPoint, ...]:
        assert group == "shop.contexts"
        return points

    monkeypatch.setattr(contexts, "entry_points", entry_points)


def test_contexts_come_in_a_fixed_order_whatever_order_they_are_found_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    by_name = {context.name: context for context in CONTEXTS}
    _declared(
        monkeypatch,
        *(_EntryPoint(name, f"shop_{name}.module:module", by_name[name])
          for name in ["users", "orders", "catalog"]),
    )  # fmt: skip
    assert [c.name for c in installed_contexts()] == ["catalog", "orders", "users"]


def test_an_entry_point_that_is_not_a_context_stops_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _declared(monkeypatch, _EntryPoint("stray", "somewhere:thing", object()))
    with pytest.raises(TypeError, match=r"'stray' \(somewhere:thing\) is not a ContextModule"):
        installed_contexts()


def test_an_entry_point_must_carry_its_context_s_name(monkeypatch: pytest.MonkeyPatch) -> None:
    users = next(context for context in CONTEXTS if context.name == "users")
    _declared(monkeypatch, _EntryPoint("people", "shop_users.module:module", users))
    with pytest.raises(ValueError, match="'people' names a context called 'users'"):
        installed_contexts()


async def test_the_container_hands_out_units_of_work_on_the_real_database(
    shop_settings: Settings, resources: Resources
) -> None:
    container = composition.build_container(shop_settings, resources)
    assert container.resolve(Settings) is shop_settings
    transactions = container.resolve(Transactions)
    first, second = transactions.unit_of_work(), transactions.unit_of_work()
    assert first is not second
    async with first as uow:
        assert (await uow.connection.execute(text("SELECT 1"))).scalar_one() == 1


async def test_each_context_registers_its_own_parts(
    shop_settings: Settings, resources: Resources
) -> None:
    class Shelf:
        pass

    def register(wiring: Wiring) -> None:
        wiring.provide(Shelf, Shelf())

    original = next(context for context in CONTEXTS if context.name == "users")
    spy = ContextModule(
        name="spy",
        migrations=MigrationTarget(
            "spy", original.migrations.metadata, original.migrations.script_location
        ),
        register=register,
    )
    container = composition.build_container(shop_settings, resources, (*CONTEXTS, spy))
    assert isinstance(container.resolve(Shelf), Shelf)


def _context(name: str) -> ContextModule:
    return next(context for context in CONTEXTS if context.name == name)


async def test_the_contexts_compose_in_reverse_order_too(
    shop_settings: Settings, resources: Resources
) -> None:
    # Orders now comes before the catalog whose prices it reads, notifications before the
    # users whose addresses it writes to.
    backwards = tuple(reversed(CONTEXTS))
    assert [c.name for c in backwards] == ["users", "orders", "notifications", "catalog"]
    container = composition.build_container(shop_settings, resources, backwards)

    sku = f"REV-{uuid.uuid4().hex[:8].upper()}"
    transactions: Transactions = container.resolve(Transactions)
    products: ProductAdmin = container.resolve(ProductAdmin)
    await products.create(
        transactions.unit_of_work(), sku=sku, name="Mug", description="",
        price=Money(1250, "EUR"), stock=3, actor="test",
    )  # fmt: skip
    ordering: Ordering = container.resolve(Ordering)
    order = await ordering.create(transactions.unit_of_work(), Caller(uuid.uuid4()), [Item(sku, 2)])
    assert order.total == Money(2500, "EUR")  # priced by the catalog registered after it
    assert isinstance(container.resolve(Mailing), Mailing)


def test_each_context_registers_after_the_providers_of_what_it_needs() -> None:
    for given in (CONTEXTS, tuple(reversed(CONTEXTS))):
        order = [c.name for c in registration_order(given)]
        assert sorted(order) == sorted(c.name for c in CONTEXTS)
        assert order.index("catalog") < order.index("orders")
        assert order.index("users") < order.index("notifications")
    assert CatalogQueries in _context("catalog").provides
    assert CatalogQueries in _context("orders").needs
    assert UserContacts in _context("users").provides
    assert UserContacts in _context("notifications").needs


def test_a_need_that_no_installed_context_provides_stops_the_start() -> None:
    without_users = [c for c in CONTEXTS if c.name != "users"]
    with pytest.raises(
        CompositionError,
        match="notifications needs UserContacts, ResetTokens, which no installed context provides",
    ):
        registration_order(without_users)


def test_a_facade_provided_twice_stops_the_start() -> None:
    twin = replace(_context("catalog"), name="catalog2")
    with pytest.raises(CompositionError, match="CatalogQueries is provided by both catalog"):
        registration_order([*CONTEXTS, twin])


def test_contexts_that_need_each_other_stop_the_start() -> None:
    catalog = replace(_context("catalog"), needs=[UserContacts])
    users = replace(_context("users"), needs=[CatalogQueries])
    with pytest.raises(CompositionError, match=r"in a cycle: (\w+) -> (?!\1)\w+ -> \1$"):
        registration_order([catalog, users])


async def test_a_context_that_does_not_register_what_it_provides_stops_the_start(
    shop_settings: Settings, resources: Resources
) -> None:
    class Shelves:
        pass

    spy = ContextModule(name="spy", migrations=_context("users").migrations, provides=[Shelves])
    with pytest.raises(
        CompositionError, match="spy declares that it provides Shelves but did not register it"
    ):
        composition.build_container(shop_settings, resources, (*CONTEXTS, spy))


def test_the_event_shapes_of_the_release_before_reach_the_current_subscribers() -> None:
    backbone = Backbone.of(CONTEXTS)
    routes = {(entry.event_type, entry.subscriber) for entry in backbone.release.routes}
    # An order placed by the release before (the order spread over the event) is reserved
    # and projected by this one's subscribers, which read it as the current shape.
    for subscriber in ("catalog.ReserveStock", "orders.OrderViewProjector"):
        assert ("orders.OrderPlaced.v2", subscriber) in routes
        assert ("orders.OrderPlaced.v3", subscriber) in routes
        assert "orders.OrderPlaced.v2" in backbone.handled[subscriber]
