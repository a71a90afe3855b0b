"""The composition root builds one container from settings and lets every context register."""

from __future__ import annotations

from collections.abc import AsyncIterator

import punq
import pytest
from sqlalchemy import text

from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings
from shop_kernel.unit_of_work import UnitOfWork
from shop_platform import container as composition
from shop_platform.contexts import CONTEXTS
from shop_platform.resources import Resources, open_resources


@pytest.fixture
async def resources(shop_settings: Settings) -> AsyncIterator[Resources]:
    async with open_resources(shop_settings, role="test") as opened:
        yield opened


def test_every_context_is_part_of_the_service() -> None:
    assert [c.name for c in CONTEXTS] == ["users", "catalog", "orders", "notifications"]


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

    original = CONTEXTS[0]
    spy = ContextModule(
        name="spy",
        migrations=MigrationTarget(
            "spy", original.migrations.metadata, original.migrations.script_location
        ),
        register=register,
    )
    container = composition.build_container(shop_settings, resources, (*CONTEXTS, spy))
    assert isinstance(container.resolve(Shelf), Shelf)
