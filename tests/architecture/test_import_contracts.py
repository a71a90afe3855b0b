"""The import-linter contracts hold for the code, and each one really catches its violation.

Each negative case copies the packages into a temporary folder, adds one forbidden import
and runs import-linter with the project's own configuration against the copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "shop_kernel": ROOT / "platform/kernel/src/shop_kernel",
    "shop_platform": ROOT / "platform/app/src/shop_platform",
    **{
        f"shop_{name}": ROOT / f"contexts/{name}/src/shop_{name}"
        for name in ("users", "catalog", "orders", "notifications")
    },
    **{
        f"shop_{name}_contract": ROOT / f"contexts/{name}/contract/src/shop_{name}_contract"
        for name in ("users", "catalog", "orders", "notifications")
    },
}
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_code_keeps_every_contract() -> None:
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module_file", "bad_import", "contract"),
    [
        (
            "shop_orders/domain/__init__.py",
            "import sqlalchemy",
            "Domains import only the standard library and shop_kernel.domain",
        ),
        (
            "shop_catalog/domain/__init__.py",
            "import shop_kernel.unit_of_work",
            "Domains import only the standard library and shop_kernel.domain",
        ),
        (
            "shop_orders/application/__init__.py",
            "import shop_orders.adapters.sql",
            "Inside a context: module > adapters > application > domain",
        ),
        (
            "shop_orders_contract/__init__.py",
            "import shop_orders.domain",
            "Contract packages import no context and not the platform",
        ),
        (
            "shop_orders_contract/__init__.py",
            "import shop_catalog_contract",
            "Contract packages are independent of each other",
        ),
        (
            "shop_orders/adapters/__init__.py",
            "import shop_catalog.domain",
            "Contexts are independent of each other: they meet only in contract packages",
        ),
        (
            "shop_notifications/module.py",
            "import shop_users.module",
            "Contexts are independent of each other: they meet only in contract packages",
        ),
        (
            "shop_kernel/sql.py",
            "import shop_users_contract",
            "The kernel imports no context, no contract and not the platform",
        ),
        (
            "shop_kernel/sql.py",
            "import shop_users",
            "The kernel imports no context, no contract and not the platform",
        ),
        (
            "shop_users/domain/__init__.py",
            "import shop_users_contract",
            "Domains import only the standard library and shop_kernel.domain",
        ),
        (
            "shop_notifications/module.py",
            "import shop_platform.app",
            "Contexts never import the platform",
        ),
        (
            "shop_platform/admins.py",
            "import shop_users.application.accounts",
            "The platform reaches a context only through its module and its contract package",
        ),
    ],
    ids=[
        "domain-sqlalchemy",
        "domain-kernel-io",
        "application-adapters",
        "contract-context",
        "contract-contract",
        "cross-context",
        "cross-context-module",
        "kernel-contract",
        "kernel-context",
        "domain-contract",
        "context-platform",
        "platform-context-internals",
    ],
)
def test_a_contract_catches_its_violation(
    tmp_path: Path, module_file: str, bad_import: str, contract: str
) -> None:
    for name, source in PACKAGES.items():
        shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / module_file
    target.write_text(target.read_text() + f"\n{bad_import}\n")
    result = lint_imports(pythonpath=tmp_path)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout, result.stdout
