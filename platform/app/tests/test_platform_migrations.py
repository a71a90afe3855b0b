"""`shop db upgrade`: the kernel's schema first, then each context's; idempotent; no drift."""

from __future__ import annotations

import os
import subprocess
import sys

from shop_devkit.plugin import MakeDatabase
from shop_kernel.migrations import check, upgrade
from shop_platform.contexts import migration_targets


def test_the_kernel_schema_is_migrated_before_every_context() -> None:
    assert [t.schema for t in migration_targets()] == [
        "messaging", "catalog", "notifications", "orders", "users",
    ]  # fmt: skip


def test_an_empty_database_upgrades_to_every_head_without_drift(
    make_database: MakeDatabase,
) -> None:
    url = make_database()
    targets = migration_targets()
    reached = upgrade(url, targets)
    assert reached == [(t.schema, t.head()) for t in targets]
    for target in targets:
        check(url, target)
    assert upgrade(url, targets) == reached


def test_shop_db_upgrade_reports_each_schema(make_database: MakeDatabase) -> None:
    url = make_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env["SHOP_DATABASE_URL"] = url
    command = [sys.executable, "-m", "shop_platform.cli", "db"]
    upgraded = subprocess.run(
        [*command, "upgrade"], env=env, capture_output=True, text=True, check=False
    )
    checked = subprocess.run(
        [*command, "check"], env=env, capture_output=True, text=True, check=False
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout.splitlines() == [f"{t.schema}: {t.head()}" for t in migration_targets()]
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count("no drift") == len(migration_targets())
