"""Embedded PostgreSQL, Redis and Mongo-wire server: real, persistent, never orphaned."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psycopg
import pytest
from pymongo import MongoClient
from redis import Redis

from shop_devkit.embedded import EmbeddedServices
from shop_kernel.sql import libpq_url

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it no longer runs anything.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_data_survives_a_restart(tmp_path: Path) -> None:
    with EmbeddedServices(tmp_path) as first:
        urls = first.urls
        with psycopg.connect(libpq_url(urls["postgres"]), autocommit=True) as conn:
            conn.execute("CREATE TABLE marker (value text)")
            conn.execute("INSERT INTO marker VALUES ('kept')")
        Redis.from_url(urls["redis"]).set("marker", "kept")
        mongo: MongoClient[dict[str, object]] = MongoClient(urls["mongodb"])
        mongo["shop"]["marker"].insert_one({"value": "kept"})
        mongo.close()
    with EmbeddedServices(tmp_path) as second:
        urls = second.urls
        with psycopg.connect(libpq_url(urls["postgres"])) as conn:
            row = conn.execute("SELECT value FROM marker").fetchone()
        assert row == ("kept",)
        assert Redis.from_url(urls["redis"]).get("marker") == b"kept"
        mongo = MongoClient(urls["mongodb"])
        assert mongo["shop"]["marker"].find_one({}, {"_id": 0}) == {"value": "kept"}
        mongo.close()


def test_stopping_leaves_no_server_running(tmp_path: Path) -> None:
    services = EmbeddedServices(tmp_path)
    services.start()
    pids = list(services.pids())
    services.stop()
    assert len(pids) == 3
    assert not [pid for pid in pids if _alive(pid)]


def test_a_killed_parent_takes_its_servers_with_it(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import json, sys, time
        from pathlib import Path
        from shop_devkit.embedded import EmbeddedServices
        services = EmbeddedServices(Path({str(tmp_path)!r}))
        services.start()
        print("PIDS", json.dumps(list(services.pids())), flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    line = ""
    while not line.startswith("PIDS "):
        line = parent.stdout.readline()
        assert line, "the parent exited before starting its servers"
    pids: list[int] = json.loads(line.removeprefix("PIDS "))
    assert len(pids) == 3
    assert all(_alive(pid) for pid in pids)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    assert [pid for pid in pids if _alive(pid)] == []
