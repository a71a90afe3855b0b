"""What the benchmarks share: the servers they run against, and percentiles."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from pymongo import MongoClient
from redis import Redis

from shop_devkit.embedded import EmbeddedServices
from shop_kernel.migrations import upgrade
from shop_kernel.sql import libpq_url
from shop_platform.contexts import migration_targets

ROOT = Path(__file__).resolve().parents[2]
SERVER_CPU = 0
CLIENT_CPU = 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def servers(tmp: Path) -> tuple[dict[str, str], EmbeddedServices]:
    """The servers named by SHOP_TEST_*_URL, and embedded ones (under ``tmp``) for the rest."""
    env = os.environ
    embedded = EmbeddedServices(
        tmp,
        postgres="SHOP_TEST_DATABASE_URL" not in env,
        redis="SHOP_TEST_REDIS_URL" not in env,
        mongodb="SHOP_TEST_MONGODB_URL" not in env,
    )
    urls = embedded.start()
    admin = env.get("SHOP_TEST_DATABASE_URL") or urls["postgres"].rsplit("/", 1)[0] + "/postgres"
    return {
        "postgres": admin,
        "redis": env.get("SHOP_TEST_REDIS_URL") or urls["redis"],
        "mongodb": env.get("SHOP_TEST_MONGODB_URL") or urls["mongodb"],
    }, embedded


def fresh_database(admin_url: str) -> tuple[str, str]:
    """A new database, migrated to the head of every schema: (its name, its URL)."""
    name = f"shop_bench_{uuid.uuid4().hex[:8]}"
    admin = libpq_url(admin_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + "/" + name
    upgrade(url, migration_targets())
    return name, url


def drop_databases(admin_url: str, mongodb_url: str, name: str) -> None:
    with psycopg.connect(libpq_url(admin_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    mongo: MongoClient[dict[str, Any]] = MongoClient(mongodb_url)
    try:
        mongo.drop_database(name)
    finally:
        mongo.close()


def claim_redis_database(server_url: str) -> tuple[Redis, str]:
    """A Redis database (1..15) nobody else uses, claimed the way the test plugin claims one.

    The server may be shared with test sessions running at the same time: flushing a fixed
    index could wipe theirs, so take a free one and empty only that one afterwards.
    """
    server = server_url.rsplit("/", 1)[0] if server_url.count("/") > 2 else server_url
    marker = f"shop:bench:{uuid.uuid4().hex}"
    for index in random.sample(range(1, 16), 15):
        client: Redis = Redis.from_url(f"{server}/{index}")
        claimed = client.set("shop:test-session", marker, nx=True, ex=3600)
        if claimed and client.dbsize() == 1:
            return client, f"{server}/{index}"
        if claimed:
            client.delete("shop:test-session")
        client.close()
    raise RuntimeError(f"no free Redis database (1..15) on {server}")


def pinning() -> bool:
    return len(os.sched_getaffinity(0)) >= 2 and {SERVER_CPU, CLIENT_CPU} <= os.sched_getaffinity(0)


def start_server(
    database_url: str,
    redis_url: str,
    mongodb_url: str,
    database: str,
    data_dir: Path,
    port: int,
    *,
    command: tuple[str, ...] = ("api",),
    cpus: set[int] | None = None,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``shop api`` (or another ``shop`` command) against these stores, logging to
    ``<data_dir>/<command>.log``; pinned to ``cpus`` (default: SERVER_CPU, when pinning)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update(
        SHOP_DATABASE_URL=database_url, SHOP_REDIS_URL=redis_url, SHOP_MONGODB_URL=mongodb_url,
        SHOP_MONGODB_DATABASE=database, SHOP_DATA_DIR=str(data_dir), SHOP_LOG_LEVEL="WARNING",
        SHOP_RATE_LIMIT_LOGIN_PER_MINUTE="10000", SHOP_RATE_LIMIT_REGISTER_PER_MINUTE="10000",
        # The customers sign in once, when the shop is filled; a full run lasts longer than
        # the default 15 minutes of a token.
        SHOP_ACCESS_TOKEN_TTL_S="86400",
        **(extra_env or {}),
    )  # fmt: skip
    # `shop <command>`, or another program of the environment (an ASGI server, the
    # harness's control app) as given.
    program = [] if command[0] in {"granian", "python"} else ["shop"]
    argv = ["uv", "run", "--no-sync", *program, *command]
    if command == ("api",):
        argv += ["--host", "127.0.0.1", "--port", str(port)]
    previous = os.sched_getaffinity(0)
    if pinning():
        os.sched_setaffinity(0, cpus if cpus is not None else {SERVER_CPU})  # inherited at fork
    try:
        name = Path(command[1]).stem if command[0] == "python" else command[0]
        with (data_dir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                argv, cwd=ROOT, env=env, start_new_session=True, stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
    finally:
        os.sched_setaffinity(0, previous)


def server_tree(server: subprocess.Popen[bytes]) -> list[psutil.Process]:
    root = psutil.Process(server.pid)
    return [root, *root.children(recursive=True)]


def pin_tree(server: subprocess.Popen[bytes]) -> list[list[int]]:
    """Pin every process of the server to SERVER_CPU (again: `uv run` may have started more)."""
    affinities = []
    for proc in server_tree(server):
        if pinning():
            proc.cpu_affinity([SERVER_CPU])
        affinities.append(proc.cpu_affinity())
    return affinities


def server_cpu_seconds(server: subprocess.Popen[bytes]) -> float:
    total = 0.0
    for proc in server_tree(server):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def stop_server(server: subprocess.Popen[bytes]) -> int | None:
    if server.poll() is not None:
        return server.returncode
    server.send_signal(signal.SIGTERM)
    try:
        return server.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        return server.wait()


async def wait_ready(client: httpx.AsyncClient, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the API exited with {server.returncode}:\n{tail}")
        try:
            if (await client.get("/health/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the API was not ready within 120 s (log: {log})")


@dataclass(frozen=True)
class Stores:
    """A benchmark's own stores: a fresh migrated database, a free Redis database, Mongo."""

    database_url: str
    redis_url: str
    mongodb_url: str
    database: str
    data_dir: Path
    port: int

    def start(self, **options: Any) -> subprocess.Popen[bytes]:
        """``shop`` on these stores (see start_server for the options)."""
        return start_server(
            self.database_url, self.redis_url, self.mongodb_url, self.database, self.data_dir,
            self.port, **options,
        )  # fmt: skip


@contextmanager
def bench_stores() -> Iterator[Stores]:
    """Stores for one benchmark run, dropped (and embedded servers stopped) afterwards."""
    from shop_devkit.embedded import free_port  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as tmp:
        urls, embedded = servers(Path(tmp))
        redis: Redis | None = None
        database: str | None = None
        try:
            database, database_url = fresh_database(urls["postgres"])
            redis, redis_url = claim_redis_database(urls["redis"])
            data_dir = Path(tmp) / "shop"
            data_dir.mkdir()
            yield Stores(database_url, redis_url, urls["mongodb"], database, data_dir, free_port())
        finally:
            if redis is not None:
                redis.flushdb()
                redis.close()
            if database is not None:
                drop_databases(urls["postgres"], urls["mongodb"], database)
            embedded.stop()
