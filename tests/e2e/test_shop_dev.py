"""`shop dev` from nothing: embedded stores, migrations, worker and API; clean stop; data kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest

from shop_devkit.embedded import free_port
from shop_devkit.plugin import MakeDatabase
from shop_kernel.sql import libpq_url

pytestmark = pytest.mark.slow

READY_WITHIN = 60.0


class DevRun:
    def __init__(self, workdir: Path, port: int, **settings: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
        env.update(SHOP_LOG_FORMAT="json", **settings)
        self.port = port
        self.log = (workdir / "dev.log").open("ab")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "shop_platform.cli", "dev", "--port", str(port)],
            cwd=workdir,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.ready_after = self._wait_ready(started)

    def _wait_ready(self, started: float) -> float:
        url = f"http://127.0.0.1:{self.port}/health/ready"
        while time.monotonic() - started < READY_WITHIN:
            assert self.process.poll() is None, f"shop dev exited with {self.process.returncode}"
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail(f"/health/ready was not 200 within {READY_WITHIN:.0f} s")

    def descendants(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children(recursive=True)

    def stop(self, sig: signal.Signals) -> list[psutil.Process]:
        """Signal the supervisor; return the processes still alive afterwards."""
        family = self.descendants()
        self.process.send_signal(sig)
        self.process.wait(60)
        _, alive = psutil.wait_procs(family, timeout=10)
        self.log.close()
        return [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    # Belt and braces: never leave a server behind, even when an assertion failed.
    for proc in psutil.process_iter(["cmdline"]):
        if str(tmp_path) in " ".join(proc.info["cmdline"] or []):
            proc.kill()


def test_shop_dev_serves_stops_cleanly_and_keeps_its_data(workdir: Path) -> None:
    first = DevRun(workdir, free_port())
    assert first.ready_after < READY_WITHIN
    names = {p.name() for p in first.descendants()}
    assert {"postgres", "redis-server"} <= names
    assert (workdir / ".shop" / "services.json").exists()
    urls = json.loads((workdir / ".shop" / "services.json").read_text())
    with psycopg.connect(libpq_url(urls["postgres"]), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.kept (value text)")
        conn.execute("INSERT INTO public.kept VALUES ('across restarts')")
    live = httpx.get(f"http://127.0.0.1:{first.port}/health/live")
    assert live.json() == {"status": "ok"}
    assert first.stop(signal.SIGTERM) == []
    assert first.process.returncode == 0

    second = DevRun(workdir, free_port())
    urls = json.loads((workdir / ".shop" / "services.json").read_text())
    with psycopg.connect(libpq_url(urls["postgres"])) as conn:
        assert conn.execute("SELECT value FROM public.kept").fetchone() == ("across restarts",)
    assert second.stop(signal.SIGINT) == []


def test_each_configured_store_is_used_instead_of_its_embedded_twin(
    workdir: Path, make_database: MakeDatabase, redis_url: str
) -> None:
    database_url = make_database()
    run = DevRun(workdir, free_port(), SHOP_DATABASE_URL=database_url, SHOP_REDIS_URL=redis_url)
    names = {p.name() for p in run.descendants()}
    embedded = json.loads((workdir / ".shop" / "services.json").read_text())
    with psycopg.connect(libpq_url(database_url)) as conn:
        migrated = conn.execute("SELECT version_num FROM messaging.alembic_version").fetchone()
    assert run.stop(signal.SIGTERM) == []
    assert list(embedded) == ["mongodb"]
    assert "postgres" not in names
    assert "redis-server" not in names
    assert migrated is not None
