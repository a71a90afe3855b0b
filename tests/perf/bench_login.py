"""Benchmark of login latency: concurrent POST /auth/token against the real API server.

Run: uv run python tests/perf/bench_login.py [--logins 400] [--concurrency 20] [--failures 0.25]

Uses the servers named by SHOP_TEST_DATABASE_URL / SHOP_TEST_REDIS_URL / SHOP_TEST_MONGODB_URL,
and embedded ones for those unset. The API runs as `uv run shop api` in a subprocess on a fresh,
migrated database, pinned to CPU 0 while this load generator is pinned to CPU 1 (when the
machine has two CPUs or more). A share of the logins fail on purpose, half with a wrong
password, half with an unknown email; both must answer 401 and take as long as a success
(so a login's timing does not tell whether an account exists). Reports numbers; it asserts
nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import psycopg
from perf_support import percentile, servers
from pymongo import MongoClient
from redis import Redis

from shop_kernel.embedded import free_port
from shop_kernel.migrations import upgrade
from shop_kernel.sql import libpq_url
from shop_platform.contexts import migration_targets

ROOT = Path(__file__).resolve().parents[2]
SERVER_CPU = 0
CLIENT_CPU = 1
EXPECTED = {"ok": 200, "wrong_password": 401, "unknown_email": 401}


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
    marker = f"shop:bench-login:{uuid.uuid4().hex}"
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
    database_url: str, redis_url: str, mongodb_url: str, database: str, data_dir: Path, port: int
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update(
        SHOP_DATABASE_URL=database_url, SHOP_REDIS_URL=redis_url, SHOP_MONGODB_URL=mongodb_url,
        SHOP_MONGODB_DATABASE=database, SHOP_DATA_DIR=str(data_dir), SHOP_LOG_LEVEL="WARNING",
        SHOP_RATE_LIMIT_LOGIN_PER_MINUTE="10000", SHOP_RATE_LIMIT_REGISTER_PER_MINUTE="10000",
    )  # fmt: skip
    previous = os.sched_getaffinity(0)
    if pinning():
        os.sched_setaffinity(0, {SERVER_CPU})  # inherited by the child at fork
    try:
        with (data_dir / "api.log").open("ab") as log:
            return subprocess.Popen(
                [
                    "uv",
                    "run",
                    "--no-sync",
                    "shop",
                    "api",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                cwd=ROOT,
                env=env,
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
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
class Attempt:
    kind: str  # "ok", "wrong_password" or "unknown_email"
    email: str
    password: str


@dataclass(frozen=True)
class Outcome:
    kind: str
    status: int
    seconds: float


def password_of(n: int) -> str:
    return f"correct horse battery {n}"


async def register(client: httpx.AsyncClient, users: int, run: str, concurrency: int) -> list[str]:
    gate = asyncio.Semaphore(concurrency)

    async def one(n: int) -> str:
        email = f"bench-{run}-{n}@example.com"
        body = {"email": email, "password": password_of(n), "name": f"Bench User {n}"}
        async with gate:
            response = await client.post("/users", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"registration failed: {response.status_code} {response.text}")
        return email

    return await asyncio.gather(*(one(n) for n in range(users)))


def attempts(emails: list[str], count: int, failures: float, rng: random.Random) -> list[Attempt]:
    failing = round(count * failures)
    kinds = ["wrong_password"] * (failing // 2)
    kinds += ["unknown_email"] * (failing - len(kinds))
    kinds += ["ok"] * (count - failing)
    rng.shuffle(kinds)
    planned = []
    for i, kind in enumerate(kinds):
        n = rng.randrange(len(emails))
        if kind == "ok":
            planned.append(Attempt(kind, emails[n], password_of(n)))
        elif kind == "wrong_password":
            planned.append(Attempt(kind, emails[n], password_of(n) + " staple"))
        else:
            planned.append(Attempt(kind, f"nobody-{i}-{emails[n]}", password_of(n)))
    return planned


async def run_logins(
    client: httpx.AsyncClient, planned: list[Attempt], concurrency: int
) -> tuple[list[Outcome], float]:
    """A closed loop: ``concurrency`` clients, each sending its next login when one returns."""
    queue: asyncio.Queue[Attempt] = asyncio.Queue()
    for attempt in planned:
        queue.put_nowait(attempt)
    outcomes: list[Outcome] = []

    async def client_loop() -> None:
        while not queue.empty():
            attempt = queue.get_nowait()
            body = {"email": attempt.email, "password": attempt.password}
            started = time.perf_counter()
            response = await client.post("/auth/token", json=body)
            await response.aread()
            outcomes.append(
                Outcome(attempt.kind, response.status_code, time.perf_counter() - started)
            )

    started = time.perf_counter()
    await asyncio.gather(*(client_loop() for _ in range(concurrency)))
    return outcomes, time.perf_counter() - started


def latency(outcomes: list[Outcome]) -> dict[str, Any]:
    ms = [o.seconds * 1000 for o in outcomes]
    if not ms:
        return {"count": 0}
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 0.50), 1), "p90_ms": round(percentile(ms, 0.90), 1),
        "p99_ms": round(percentile(ms, 0.99), 1), "max_ms": round(max(ms), 1),
        "mean_ms": round(sum(ms) / len(ms), 1),
    }  # fmt: skip


async def bench(
    server: subprocess.Popen[bytes], port: int, log: Path, args: argparse.Namespace
) -> dict[str, Any]:
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=120.0, limits=limits
    ) as client:
        await wait_ready(client, server, log)
        affinities = pin_tree(server)
        run = uuid.uuid4().hex[:8]
        emails = await register(client, args.users, run, args.concurrency)
        rng = random.Random(args.seed)
        # Warm-up: connections opened, the dummy hash made, code paths imported; not counted.
        await run_logins(
            client, attempts(emails, args.warmup, args.failures, rng), args.concurrency
        )
        planned = attempts(emails, args.logins, args.failures, rng)
        cpu_before = server_cpu_seconds(server)
        outcomes, seconds = await run_logins(client, planned, args.concurrency)
        cpu_after = server_cpu_seconds(server)
    unexpected = Counter(
        f"{o.kind}:{o.status}" for o in outcomes if o.status != EXPECTED[o.kind]
    )  # fmt: skip
    expected = [o for o in outcomes if o.status == EXPECTED[o.kind]]
    succeeded = [o for o in expected if o.kind == "ok"]
    failed = [o for o in expected if o.kind != "ok"]
    return {
        "count": len(outcomes),
        "concurrency": args.concurrency,
        "users": args.users,
        "warmup_logins": args.warmup,
        "seconds": round(seconds, 2),
        "logins_per_s": round(len(outcomes) / seconds, 1),
        "success_200": latency(succeeded),
        "failure_401": {
            **latency(failed),
            "wrong_password": latency([o for o in failed if o.kind == "wrong_password"]),
            "unknown_email": latency([o for o in failed if o.kind == "unknown_email"]),
        },
        "failure_over_success_p50": (
            round(
                percentile([o.seconds for o in failed], 0.5)
                / percentile([o.seconds for o in succeeded], 0.5),
                3,
            )
            if failed and succeeded
            else None
        ),
        "unexpected_statuses": dict(sorted(unexpected.items())),
        "server_cpu_s_per_login": round((cpu_after - cpu_before) / len(outcomes), 4),
        "server_cpu_utilisation": round((cpu_after - cpu_before) / seconds, 2),
        "server_processes_affinity": affinities,
        "client_affinity": sorted(os.sched_getaffinity(0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--failures", type=float, default=0.25, help="share of failed logins")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls, embedded = servers(Path(tmp))
        redis: Redis | None = None
        database: str | None = None
        try:
            database, database_url = fresh_database(urls["postgres"])
            redis, redis_url = claim_redis_database(urls["redis"])
            data_dir = Path(tmp) / "api"
            data_dir.mkdir()
            port = free_port()
            server = start_server(
                database_url, redis_url, urls["mongodb"], database, data_dir, port
            )
            if pinning():
                os.sched_setaffinity(0, {CLIENT_CPU})
            try:
                report = asyncio.run(bench(server, port, data_dir / "api.log", args))
            finally:
                report_exit = stop_server(server)
            report["server_exit_code"] = report_exit
        finally:
            if redis is not None:
                redis.flushdb()
                redis.close()
            if database is not None:
                drop_databases(urls["postgres"], urls["mongodb"], database)
            embedded.stop()
    print(json.dumps(report, indent=2))  # noqa: T201 - the report is the output


if __name__ == "__main__":
    main()
