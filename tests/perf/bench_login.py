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
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from perf_support import (
    CLIENT_CPU,
    bench_stores,
    percentile,
    pin_tree,
    pinning,
    server_cpu_seconds,
    stop_server,
    wait_ready,
)

EXPECTED = {"ok": 200, "wrong_password": 401, "unknown_email": 401}


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
    with bench_stores() as stores:
        server = stores.start()
        if pinning():
            os.sched_setaffinity(0, {CLIENT_CPU})
        try:
            report = asyncio.run(bench(server, stores.port, stores.data_dir / "api.log", args))
        finally:
            report_exit = stop_server(server)
        report["server_exit_code"] = report_exit
    print(json.dumps(report, indent=2))  # noqa: T201 - the report is the output


if __name__ == "__main__":
    main()
