"""The `shop` command refuses bad configuration in one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def run_shop(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    return subprocess.run(
        [sys.executable, "-m", "shop_platform.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("command", [["api"], ["worker"], ["dev"], ["db", "upgrade"]])
def test_a_malformed_setting_stops_every_command_with_one_line(command: list[str]) -> None:
    result = run_shop(*command, SHOP_DB_POOL_SIZE="lots")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "shop: configuration error: SHOP_DB_POOL_SIZE: expected `int`, got 'lots'"
    ]


def test_a_missing_store_url_is_named() -> None:
    result = run_shop("db", "upgrade")
    assert result.returncode == 2
    assert "SHOP_DATABASE_URL: is not set" in result.stderr


def test_a_misspelt_setting_is_pointed_out() -> None:
    result = run_shop("api", SHOP_REDIS_ULR="redis://127.0.0.1:6379/0")
    assert result.returncode == 2
    assert "SHOP_REDIS_ULR: unknown setting (did you mean SHOP_REDIS_URL?)" in result.stderr


def test_the_worker_command_hands_dramatiq_its_threads_and_idle_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from click.testing import CliRunner  # noqa: PLC0415

    from shop_platform import cli  # noqa: PLC0415

    executed: list[list[str]] = []
    environment = {"SHOP_WORKER_IDLE_POLL_MS": "40", "SHOP_WORKER_THREADS": "3"}
    monkeypatch.setattr(os, "environ", environment)
    monkeypatch.setattr(os, "execv", lambda _path, argv: executed.append(list(argv)))  # pyright: ignore[reportUnknownLambdaType, reportUnknownArgumentType]
    result = CliRunner().invoke(cli.shop, ["worker", "--processes", "2"])
    assert result.exit_code == 0, result.output
    assert environment["dramatiq_worker_timeout"] == "40"
    argv = executed[0]
    assert argv[argv.index("--processes") + 1] == "2"
    assert argv[argv.index("--threads") + 1] == "3"


def test_shop_dev_without_the_development_kit_says_how_to_get_it() -> None:
    # As in the production image, which does not install shop-devkit.
    without_kit = (
        "import sys; sys.modules['shop_devkit'] = None; sys.argv = ['shop', 'dev'];"
        " from shop_platform.cli import main; main()"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    result = subprocess.run(
        [sys.executable, "-c", without_kit],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "shop dev needs the development kit (shop-devkit)" in result.stderr
    assert "Traceback" not in result.stderr


def _dramatiq_queues(monkeypatch: pytest.MonkeyPatch, *args: str) -> list[str] | None:
    """The queues `shop worker ARGS` has Dramatiq listen to (None: all of them)."""
    from click.testing import CliRunner  # noqa: PLC0415

    from shop_platform import cli  # noqa: PLC0415

    executed: list[list[str]] = []
    monkeypatch.setattr(os, "environ", {})
    monkeypatch.setattr(os, "execv", lambda _path, argv: executed.append(list(argv)))  # pyright: ignore[reportUnknownLambdaType, reportUnknownArgumentType]
    result = CliRunner().invoke(cli.shop, ["worker", *args])
    assert result.exit_code == 0, result.output
    argv = executed[0]
    return argv[argv.index("--queues") + 1 :] if "--queues" in argv else None


def test_a_worker_program_serves_the_handlers_or_the_projections_or_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shop_platform.backbone import Backbone  # noqa: PLC0415
    from shop_platform.contexts import CONTEXTS  # noqa: PLC0415

    handlers = _dramatiq_queues(monkeypatch, "--serve", "handlers")
    projections = _dramatiq_queues(monkeypatch, "--serve", "projections")
    assert handlers is not None
    assert projections is not None
    assert {"orders", "catalog", "notifications"} <= set(handlers)
    assert {"orders-projections", "catalog-projections"} <= set(projections)
    assert not any(queue.endswith("-projections") for queue in handlers)
    assert all(queue.endswith("-projections") for queue in projections)
    # Between them, every queue: a program of each serves every subscriber.
    assert sorted(handlers + projections) == Backbone.of(CONTEXTS).queues
    assert _dramatiq_queues(monkeypatch) is None  # by default, one program serves all
