"""The workspace's package graph: what each package declares, and that it is what it imports.

The rules of the design (section 1): contexts point at contract packages, contract packages at
the kernel, nothing points back; a context never depends on another context; no package needs
the development kit (shop-devkit) at run time, only dev groups name it; every import is
a declared dependency and every declared dependency is imported (deptry, run on each
package's ``src``). Each check is also run on a broken copy, to show that it catches it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
DEPTRY = Path(sys.executable).parent / "deptry"
KERNEL = "shop-kernel"
# Embedded servers, pytest plugins, test SMTP: only dependency groups (development) name it.
DEVKIT = "shop-devkit"


@dataclass(frozen=True)
class Package:
    name: str
    folder: str  # relative to the repository root
    # What installing the package brings: its dependencies and its extras' (not its groups').
    requires: frozenset[str] = field(default_factory=frozenset[str])

    @property
    def is_contract(self) -> bool:
        return self.folder.startswith("contexts/") and self.folder.endswith("/contract")

    @property
    def is_context(self) -> bool:
        return self.folder.startswith("contexts/") and not self.is_contract


def _names(requirements: list[str]) -> frozenset[str]:
    return frozenset(canonicalize_name(Requirement(r).name) for r in requirements)


def workspace_packages(root: Path = ROOT) -> dict[str, Package]:
    """Every member of the uv workspace, by package name, with its workspace dependencies."""
    settings = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    folders = sorted(
        {
            path.parent
            for pattern in settings["tool"]["uv"]["workspace"]["members"]
            for path in root.glob(f"{pattern}/pyproject.toml")
        }
    )
    found: dict[str, tuple[str, frozenset[str]]] = {}
    for folder in folders:
        project = tomllib.loads((folder / "pyproject.toml").read_text("utf-8"))["project"]
        extras = project.get("optional-dependencies", {}).values()
        requires = _names(project.get("dependencies", [])).union(*map(_names, extras))
        found[canonicalize_name(project["name"])] = (folder.relative_to(root).as_posix(), requires)
    return {
        name: Package(name, folder, requires & found.keys())
        for name, (folder, requires) in found.items()
    }


def graph_problems(packages: Mapping[str, Package]) -> list[str]:
    """What breaks the design's rules in the graph ``packages`` make; [] when it keeps them."""
    problems: list[str] = []
    try:
        tuple(TopologicalSorter({p.name: p.requires for p in packages.values()}).static_order())
    except CycleError as cycle:
        problems.append(f"the package graph has a cycle: {' -> '.join(cycle.args[1])}")
    for package in packages.values():
        requires = package.requires
        if package.is_context:
            problems += [
                f"{package.name} depends on the context {other}"
                for other in sorted(requires)
                if packages[other].is_context
            ]
            own = f"{package.name}-contract"
            if own in packages and own not in requires:
                problems.append(f"{package.name} does not depend on its own contract {own}")
        if package.is_contract and requires - {KERNEL}:
            problems.append(
                f"{package.name} depends on {', '.join(sorted(requires - {KERNEL}))}: "
                "a contract package depends on the kernel only"
            )
        if package.name == KERNEL and requires:
            problems.append(f"{KERNEL} depends on {', '.join(sorted(requires))}")
        if DEVKIT in requires:
            problems.append(
                f"{package.name} depends on {DEVKIT} at run time: only a dev group may name it"
            )
    return problems


PACKAGES = workspace_packages()


def test_the_workspace_holds_the_contexts_their_contracts_the_kernel_and_the_platform() -> None:
    contexts = {p.name for p in PACKAGES.values() if p.is_context}
    contracts = {p.name for p in PACKAGES.values() if p.is_contract}
    assert contexts == {"shop-users", "shop-catalog", "shop-orders", "shop-notifications"}
    assert contracts == {
        "shop-users-contract", "shop-catalog-contract", "shop-orders-contract",
        "shop-notifications-contract",
    }  # fmt: skip
    assert {KERNEL, "shop-platform", DEVKIT} <= PACKAGES.keys()


def test_the_package_graph_keeps_the_design_s_rules() -> None:
    assert graph_problems(PACKAGES) == []


def test_the_contexts_meet_only_in_contract_packages() -> None:
    requires = {p.name: set(p.requires) for p in PACKAGES.values() if p.is_context}
    assert requires == {
        "shop-users": {KERNEL, "shop-users-contract"},
        "shop-catalog": {KERNEL, "shop-catalog-contract", "shop-orders-contract"},
        "shop-orders": {KERNEL, "shop-orders-contract", "shop-catalog-contract"},
        "shop-notifications": {
            KERNEL,
            "shop-notifications-contract",
            "shop-users-contract",
            "shop-orders-contract",
        },
    }


def _with(packages: Mapping[str, Package], name: str, *more: str) -> dict[str, Package]:
    changed = dict(packages)
    changed[name] = replace(packages[name], requires=packages[name].requires | set(more))
    return changed


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        (
            _with(PACKAGES, "shop-catalog", "shop-orders"),
            "shop-catalog depends on the context shop-orders",
        ),
        (
            _with(_with(PACKAGES, "shop-catalog", "shop-orders"), "shop-orders", "shop-catalog"),
            "the package graph has a cycle",
        ),
        (
            _with(PACKAGES, "shop-orders-contract", "shop-catalog"),
            "the package graph has a cycle",
        ),
        (
            _with(PACKAGES, "shop-orders-contract", "shop-catalog-contract"),
            "shop-orders-contract depends on shop-catalog-contract",
        ),
        (
            _with(PACKAGES, KERNEL, "shop-users-contract"),
            f"{KERNEL} depends on shop-users-contract",
        ),
        (
            {
                **PACKAGES,
                "shop-users": replace(
                    PACKAGES["shop-users"],
                    requires=PACKAGES["shop-users"].requires - {"shop-users-contract"},
                ),
            },
            "shop-users does not depend on its own contract",
        ),
        (
            _with(PACKAGES, "shop-orders", DEVKIT),
            f"shop-orders depends on {DEVKIT} at run time",
        ),
    ],
    ids=["context-context", "context-cycle", "contract-context", "contract-contract",
         "kernel-contract", "own-contract", "devkit-at-run-time"],
)  # fmt: skip
def test_the_graph_check_catches_a_broken_graph(broken: dict[str, Package], problem: str) -> None:
    problems = graph_problems(broken)
    assert any(problem in found for found in problems), problems


def test_the_graph_is_read_from_every_member_s_pyproject(tmp_path: Path) -> None:
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for package in PACKAGES.values():
        (tmp_path / package.folder).mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / package.folder / "pyproject.toml", tmp_path / package.folder)
    assert workspace_packages(tmp_path) == PACKAGES
    catalog = tmp_path / "contexts/catalog/pyproject.toml"
    text = catalog.read_text("utf-8")
    catalog.write_text(
        text.replace(
            "[project.entry-points",
            """[project.optional-dependencies]
search = ["Shop_Orders[extra]>=0.1"]

[project.entry-points""",
            1,
        ),
        "utf-8",
    )
    assert graph_problems(workspace_packages(tmp_path)) == [
        "shop-catalog depends on the context shop-orders"
    ]


# ------------------------------------------------------------------ declared = imported


def deptry(folder: Path) -> subprocess.CompletedProcess[str]:
    """deptry on the package in ``folder``: its ``src`` against its ``pyproject.toml``."""
    return subprocess.run(
        [str(DEPTRY), "src", "--no-ansi"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_a_package_imports_what_it_declares_and_declares_what_it_imports(name: str) -> None:
    result = deptry(ROOT / PACKAGES[name].folder)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No dependency issues found" in result.stdout + result.stderr


def _copy(package: str, into: Path) -> Path:
    source = ROOT / PACKAGES[package].folder
    target = into / package
    shutil.copytree(
        source,
        target,
        ignore=shutil.ignore_patterns("__pycache__", "tests", "contract", ".venv"),
    )
    return target


@pytest.mark.parametrize(
    ("package", "old", "new", "rule"),
    [
        # An import of a package left undeclared (installed here, as another's dependency).
        ("shop-catalog", '    "shop-orders-contract",', "", "DEP003"),
        # A declared dependency nothing imports.
        ("shop-orders", '    "shop-kernel",\n', '    "shop-kernel",\n    "shop-users-contract",\n',
         "DEP002"),
        # A context's code importing a context its dev group installs only for its tests.
        ("shop-orders", "from shop_orders.application.ordering import Ordering\n",
         "from shop_orders.application.ordering import Ordering\nimport shop_catalog.module\n",
         "DEP004"),
    ],
    ids=["undeclared-import", "unused-dependency", "import-of-a-test-only-context"],
)  # fmt: skip
def test_deptry_catches_a_broken_package(
    tmp_path: Path, package: str, old: str, new: str, rule: str
) -> None:
    copy = _copy(package, tmp_path)
    for path in (copy / "pyproject.toml", *copy.glob("src/*/module.py")):
        text = path.read_text("utf-8")
        if old in text:
            path.write_text(text.replace(old, new, 1), "utf-8")
            break
    else:
        pytest.fail(f"{old!r} is in neither {package}'s pyproject.toml nor its module.py")
    result = deptry(copy)
    assert result.returncode != 0
    assert rule in result.stdout + result.stderr, result.stdout + result.stderr
