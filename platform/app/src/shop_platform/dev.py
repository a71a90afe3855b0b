"""`shop dev`: the whole service on one machine with nothing installed but uv.

Starts the embedded stores for every service URL that is not configured, migrates, then runs
the worker and the API as child processes and supervises them: if one dies, everything stops;
SIGTERM or Ctrl-C stops the API, then the worker, then the stores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from shop_devkit.embedded import EmbeddedServices, free_port
from shop_kernel.log import get_logger
from shop_kernel.migrations import upgrade
from shop_kernel.settings import Settings, env_name
from shop_kernel.sql import database_url
from shop_platform.contexts import migration_targets

log = get_logger(__name__)

SERVICES_FILE = "services.json"
_URL_FIELDS = {"postgres": "database_url", "redis": "redis_url", "mongodb": "mongodb_url"}


def run_dev(settings: Settings, *, host: str, port: int) -> int:
    data_dir = settings.data_path.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    services = EmbeddedServices(
        data_dir,
        postgres=settings.database_url is None,
        redis=settings.redis_url is None,
        mongodb=settings.mongodb_url is None,
    )
    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        urls = services.start()
        settings = settings.with_overrides(
            **{_URL_FIELDS[name]: url for name, url in urls.items()},
            data_dir=str(data_dir),
        )
        _write_services_file(data_dir, urls)
        env = _child_environment(settings)
        upgrade(database_url(settings), migration_targets())
        log.info("database migrated")
        if stop.is_set():
            return 0
        cli = [sys.executable, "-m", "shop_platform.cli"]
        metrics_port = free_port()
        worker_env = {**env, env_name("worker_metrics_port"): str(metrics_port)}
        children.append(("worker", _start_child([*cli, "worker", "--processes", "1"], worker_env)))
        children.append(
            ("api", _start_child([*cli, "api", "--host", host, "--port", str(port)], env))
        )
        log.info(
            "shop dev is running",
            url=f"http://{host}:{port}",
            docs=f"http://{host}:{port}/schema",
            worker_metrics=f"http://127.0.0.1:{metrics_port}/metrics",
        )
        return _supervise(children, stop)
    finally:
        for name, child in reversed(children):
            _stop_child(name, child)
        services.stop()
        if received:
            log.info("shop dev stopped", signal=signal.Signals(received[0]).name)


def _supervise(children: list[tuple[str, subprocess.Popen[bytes]]], stop: threading.Event) -> int:
    while not stop.wait(0.2):
        for name, child in children:
            if child.poll() is not None:
                log.error(
                    "child process exited; stopping everything", child=name, code=child.returncode
                )
                return 1
    return 0


def _start_child(argv: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    # Own process group: a terminal's Ctrl-C reaches only the supervisor, which stops
    # children in order.
    return subprocess.Popen(argv, env=dict(env), start_new_session=True, stdin=subprocess.DEVNULL)


def _stop_child(name: str, child: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    if child.poll() is not None:
        return
    child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if child.poll() is None:
        log.warning("child did not stop in time; killing its process group", child=name)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def _child_environment(settings: Settings) -> dict[str, str]:
    """The children see the stores this supervisor started (or the configured ones)."""
    env = dict(os.environ)
    for field in ("database_url", "redis_url", "mongodb_url", "data_dir"):
        env[env_name(field)] = str(getattr(settings, field))
    return env


def _write_services_file(data_dir: Path, urls: Mapping[str, str]) -> None:
    """Where the embedded stores listen this time, for psql, redis-cli and mongosh users."""
    path = data_dir / SERVICES_FILE
    path.write_text(json.dumps(dict(urls), indent=2) + "\n")
