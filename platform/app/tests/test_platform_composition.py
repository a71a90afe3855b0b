"""The composition root builds one container from settings and lets every context register."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import punq
import pytest
from sqlalchemy import text

from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings
from shop_kernel.unit_of_work import UnitOfWork
from shop_platform import container as composition
from shop_platform import contexts
from shop_platform.contexts import CONTEXTS, installed_contexts
from shop_platform.resources import Resources, open_resources


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
    first, second = container.resolve(UnitOfWork), container.resolve(UnitOfWork)
    assert first is not second
    async with first as uow:
        assert (await uow.connection.execute(text("SELECT 1"))).scalar_one() == 1


async def test_each_context_registers_its_own_parts(
    shop_settings: Settings, resources: Resources
) -> None:
    class Shelf:
        pass

    def register(container: punq.Container, settings: Settings) -> None:
        container.register(Shelf, instance=Shelf())

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
