"""Benchmark of the order paths: cart edits at a given concurrency, and checkout latency.

Run: uv run python tests/perf/bench_orders.py [--clients 32] [--requests 4000] [--checkouts 100]

Uses the servers named by SHOP_TEST_DATABASE_URL / SHOP_TEST_REDIS_URL / SHOP_TEST_MONGODB_URL,
and embedded ones for those unset. `shop api` runs pinned to CPU 0, `shop worker` (relay,
saga handlers, projectors) runs unpinned, and this load generator is pinned to CPU 1.

1. `POST /orders/{id}/items`: ``--clients`` closed-loop clients, each on its own draft (a new
   draft, untimed, every 200 additions), adding one of 50 products; latency per request.
2. Checkout: ``--checkout-clients`` customers at a time create an order with 3 items and
   confirm it, then poll `GET /orders/{id}` every 10 ms; the time from sending the confirm to
   the first read showing `confirmed`.

Reports numbers; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import time
import uuid
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
    server_tree,
    stop_server,
    wait_ready,
)

ADMIN = ("bench-admin@example.com", "correct horse battery admin")
PRODUCTS = 50
PER_DRAFT = 200


def summary(seconds: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    if not ms:
        return {"count": 0}
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 0.50), 1), "p90_ms": round(percentile(ms, 0.90), 1),
        "p99_ms": round(percentile(ms, 0.99), 1), "max_ms": round(max(ms), 1),
    }  # fmt: skip


async def sign_in(client: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await client.post("/auth/token", json={"email": email, "password": password})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def customers(client: httpx.AsyncClient, count: int) -> list[dict[str, str]]:
    gate = asyncio.Semaphore(8)

    async def one(n: int) -> dict[str, str]:
        email, password = f"bench-{uuid.uuid4().hex[:8]}-{n}@example.com", f"bench password {n}"
        async with gate:
            made = await client.post("/users", json={"email": email, "password": password,
                                                     "name": f"Bench {n}"})  # fmt: skip
            made.raise_for_status()
            return await sign_in(client, email, password)

    return await asyncio.gather(*(one(n) for n in range(count)))


async def products(client: httpx.AsyncClient, boss: dict[str, str]) -> list[str]:
    skus = [f"BENCH-{n:03d}" for n in range(PRODUCTS)]
    for n, sku in enumerate(skus):
        price = {"amount": 100 + n, "currency": "EUR"}
        body = {"sku": sku, "name": f"Bench product {n}", "price": price, "stock": 10**9}
        (await client.post("/products", json=body, headers=boss)).raise_for_status()
    return skus


async def cart_edits(
    client: httpx.AsyncClient, shoppers: list[dict[str, str]], skus: list[str], total: int
) -> tuple[list[float], int, float]:
    remaining = total
    latencies: list[float] = []
    errors = 0

    async def shopper_loop(who: dict[str, str], rng: random.Random) -> None:
        nonlocal remaining, errors
        added = PER_DRAFT
        order_id = ""
        while remaining > 0:
            remaining -= 1
            if added >= PER_DRAFT:
                order_id = (await client.post("/orders", headers=who)).json()["id"]
                added = 0
            body = {"sku": rng.choice(skus), "quantity": 1}
            started = time.perf_counter()
            response = await client.post(f"/orders/{order_id}/items", json=body, headers=who)
            latencies.append(time.perf_counter() - started)
            added += 1
            errors += response.status_code != 200

    started = time.perf_counter()
    await asyncio.gather(*(shopper_loop(w, random.Random(i)) for i, w in enumerate(shoppers)))
    return latencies, errors, time.perf_counter() - started


async def checkouts(
    client: httpx.AsyncClient, shoppers: list[dict[str, str]], skus: list[str], total: int
) -> tuple[list[float], list[float], dict[str, int]]:
    remaining = total
    to_visible: list[float] = []
    confirm_calls: list[float] = []
    outcomes: dict[str, int] = {}

    async def shopper_loop(who: dict[str, str], rng: random.Random) -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            items = [{"sku": sku, "quantity": 1} for sku in rng.sample(skus, 3)]
            order = (await client.post("/orders", json={"items": items}, headers=who)).json()
            started = time.perf_counter()
            placed = await client.post(f"/orders/{order['id']}/confirm", headers=who)
            confirm_calls.append(time.perf_counter() - started)
            status = placed.json().get("status", f"http-{placed.status_code}")
            deadline = started + 30
            # The view may still show the draft, or nothing yet: wait for the outcome.
            while status in {"pending", "draft"} and time.perf_counter() < deadline:
                await asyncio.sleep(0.01)
                shown = await client.get(f"/orders/{order['id']}", headers=who)
                status = shown.json()["status"] if shown.status_code == 200 else "pending"
            outcomes[status] = outcomes.get(status, 0) + 1
            if status == "confirmed":
                to_visible.append(time.perf_counter() - started)

    await asyncio.gather(*(shopper_loop(w, random.Random(i)) for i, w in enumerate(shoppers)))
    return to_visible, confirm_calls, outcomes


def profile(api: subprocess.Popen[bytes], path: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the API's Python process, as collapsed stacks (flamegraph input)."""
    python = server_tree(api)[-1]  # uv, then the Python process it started
    return subprocess.Popen(
        ["py-spy", "record", "--pid", str(python.pid), "--format", "raw", "--output", str(path),
         "--rate", "200", "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def bench(
    port: int, api: Any, worker: Any, log: Path, args: argparse.Namespace
) -> dict[str, Any]:
    limits = httpx.Limits(
        max_connections=args.clients * 2, max_keepalive_connections=args.clients * 2
    )
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=120.0, limits=limits
    ) as client:
        await wait_ready(client, api, log)
        affinities = pin_tree(api)
        boss = await sign_in(client, *ADMIN)
        skus = await products(client, boss)
        shoppers = await customers(client, args.clients)
        await cart_edits(client, shoppers, skus, args.clients * 10)  # warm-up, not counted
        cpu_before = server_cpu_seconds(api)
        profiler = profile(api, args.profile) if args.profile else None
        latencies, errors, seconds = await cart_edits(client, shoppers, skus, args.requests)
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        api_cpu = server_cpu_seconds(api) - cpu_before
        await asyncio.sleep(2)  # let the worker catch up on the projections of the edits
        visible, confirm_calls, outcomes = await checkouts(
            client, shoppers[: args.checkout_clients], skus, args.checkouts
        )
    return {
        "add_item": {
            "clients": args.clients, "seconds": round(seconds, 2),
            "requests_per_s": round(len(latencies) / seconds, 1), "errors": errors,
            **summary(latencies),
            "api_cpu_ms_per_request": round(api_cpu / len(latencies) * 1000, 2),
        },
        "checkout": {
            "clients": args.checkout_clients, "outcomes": outcomes,
            "confirm_call": summary(confirm_calls),
            "confirm_to_confirmed_visible": summary(visible),
        },
        "api_affinity": affinities, "worker_pid": worker.pid,
        "client_affinity": sorted(os.sched_getaffinity(0)),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--checkouts", type=int, default=100)
    parser.add_argument("--checkout-clients", type=int, default=2)
    parser.add_argument(
        "--profile", type=Path, help="write py-spy's collapsed stacks of the API here"
    )
    args = parser.parse_args()
    admin = {"SHOP_BOOTSTRAP_ADMIN_EMAIL": ADMIN[0], "SHOP_BOOTSTRAP_ADMIN_PASSWORD": ADMIN[1]}
    with bench_stores() as stores:
        api = stores.start(extra_env=admin)
        worker = stores.start(command=("worker",), cpus=os.sched_getaffinity(0))
        if pinning():
            os.sched_setaffinity(0, {CLIENT_CPU})
        try:
            report = asyncio.run(bench(stores.port, api, worker, stores.data_dir / "api.log", args))
        finally:
            exit_codes = {"api": stop_server(api), "worker": stop_server(worker)}
        report["exit_codes"] = exit_codes
    print(json.dumps(report, indent=2))  # noqa: T201 - the report is the output


if __name__ == "__main__":
    main()
