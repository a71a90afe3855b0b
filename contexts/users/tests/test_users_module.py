"""The users context's wiring: its own schema, and migrations that build exactly it."""

from __future__ import annotations

from shop_devkit.module_checks import (
    assert_drift_is_caught,
    assert_migrates_to_head_without_drift,
    assert_owns_its_schema,
)
from shop_devkit.plugin import MakeDatabase
from shop_users.module import module


def test_the_module_owns_the_users_schema() -> None:
    assert module.name == "users"
    assert_owns_its_schema(module)


def test_its_migrations_reach_head_without_drift(make_database: MakeDatabase) -> None:
    assert_migrates_to_head_without_drift(module, make_database())


def test_a_table_missing_from_its_migrations_is_caught(make_database: MakeDatabase) -> None:
    assert_drift_is_caught(module, make_database())
