"""The performance harness: every hot path of the shop against this machine's ceilings, in one run.

Run: uv run python tests/perf/harness.py [--quick] [--out perf-results] [--profile]

Uses the servers named by SHOP_TEST_DATABASE_URL / SHOP_TEST_REDIS_URL / SHOP_TEST_MONGODB_URL,
and embedded ones for those unset. `shop api` runs pinned to CPU 0 and this generator to CPU 1
(when the machine has both); the worker and the stores are not pinned.

Each scenario is driven open-loop (see loadgen.py) at rising arrival rates; its knee is the
highest rate whose p99 stays under 100 ms with no error, drop or shortfall. Throughput is then
given as a ratio of the ceiling measured in the same run: the framework's (`/health/live`) for
reads, the database's (single-row insert+select transactions through psycopg) for writes.

  a  GET /health/live                          the framework ceiling
  b  GET /products/{sku}, one hot sku          every read of the same document
     GET /products/{sku}, any of the catalog   reads spread over every product
     GET /products?q=<sku prefix>              search
  c  POST /orders with an Idempotency-Key      one item each
  d  POST /orders/{id}/items                   spread over many drafts
  e  checkout: create, add 3 items, confirm    and confirm to `confirmed` in the order view
  f  event backlog drain                       c and d run with the worker stopped; then the
                                               worker drains what they left, end to end
  g  database ceiling                          insert+select transactions, no service code

Writes a JSON file and a Markdown table to --out. Reports numbers; asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import aiohttp
import msgspec
import psutil
import psycopg
import uvloop
from hdrh.histogram import HdrHistogram
from loadgen import (
    Flow,
    Recorder,
    Request,
    StepResult,
    client_session,
    new_histogram,
    open_loop,
    plain,
    send,
)
from perf_support import (
    CLIENT_CPU,
    Stores,
    bench_stores,
    pin_tree,
    pinning,
    server_tree,
    stop_server,
)
from pymongo import AsyncMongoClient, UpdateOne
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from shop_devkit.embedded import free_port
from shop_kernel.messaging.broker import NAMESPACE
from shop_kernel.sql import libpq_url
from shop_kernel.views import cache_generation_key

ADMIN = ("perf-admin@example.com", "correct horse battery admin")
PARTS = ["api", "control", "worker", "postgres", "mongo-wire", "redis"]
P99_BOUND_MS = 100.0
JSON = {"Content-Type": "application/json"}
# The API under each ASGI server the harness compares (one process; uvloop either way).
API: dict[str, Callable[[int], tuple[str, ...]]] = {
    "uvicorn": lambda _port: ("api",),
    "granian": lambda port: (
        "granian", "--interface", "asgi", "--factory", "--loop", "uvloop", "--workers", "1",
        "--host", "127.0.0.1", "--port", str(port), "--no-ws", "--log-level", "warning",
        "shop_platform.app:create_app",
    ),
}  # fmt: skip
# One worker process per core, as a 2-core host would run it.
WORKER = ("worker", "--processes", "2")


@dataclass(frozen=True)
class Plan:
    """How long and how far each search goes: the full run, or the quick smoke run for CI."""

    step_s: float
    factor: float  # rate multiplier between steps while they hold
    refine: int  # bisections between the last rate that held and the first that did not
    products: int
    customers: int
    ceiling_s: float
    fixed_steps: bool  # the targets' fixed rates: reads at 1,000/s, checkouts at 50/s
    # Steps a knee search may raise the rate (the quick run's few show that each scenario
    # runs and measures; how far it would go is for the full run).
    rising_steps: int

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls(step_s=1.2, factor=2.0, refine=0, products=200, customers=4,
                       ceiling_s=1.5, fixed_steps=False, rising_steps=3)  # fmt: skip
        return cls(step_s=6.0, factor=1.5, refine=2, products=5000, customers=20,
                   ceiling_s=8.0, fixed_steps=True, rising_steps=1000)  # fmt: skip


@dataclass(frozen=True)
class Customer:
    user_id: str
    bearer: dict[str, str]


@dataclass
class Shop:
    """The running service and what the harness made in it."""

    stores: Stores
    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes] | None
    session: aiohttp.ClientSession
    admin: dict[str, str] = field(default_factory=dict[str, str])
    skus: list[str] = field(default_factory=list[str])
    customers: list[Customer] = field(default_factory=list[Customer])
    # The control (control_app.py): the same statements as the write routes, nothing between.
    control: subprocess.Popen[bytes] | None = None
    control_session: aiohttp.ClientSession | None = None
    exit_codes: dict[str, int | None] = field(default_factory=dict[str, int | None])


@dataclass(frozen=True)
class Target:
    """Where a write scenario sends its requests: the service, or its control."""

    part: str  # whose CPU the requests cost: "api" or "control"
    prefix: str  # of every path

    def headers(self, customer: Customer) -> dict[str, str]:
        if self.part == "control":
            return {**JSON, "X-Customer-Id": customer.user_id}
        return {**JSON, **customer.bearer}

    def session(self, shop: Shop) -> aiohttp.ClientSession:
        if self.part == "control":
            assert shop.control_session is not None
            return shop.control_session
        return shop.session


SERVICE = Target("api", "")
CONTROL = Target("control", "/control")


@dataclass
class Scenario:
    key: str
    title: str
    kind: str  # "read", "write" or "ceiling"
    knee: dict[str, Any] | None = None
    steps: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    notes: dict[str, Any] = field(default_factory=dict[str, Any])


# ------------------------------------------------------------------ measuring one step


def cpu_by_part(shop: Shop) -> dict[str, float]:
    """CPU seconds used so far by each part of the system (all their processes)."""
    own = {
        "api": tree_pids(shop.api), "worker": tree_pids(shop.worker),
        "control": tree_pids(shop.control),
    }  # fmt: skip
    totals = dict.fromkeys(PARTS, 0.0)
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        try:
            part = next((name for name, pids in own.items() if proc.pid in pids), None)
            name, cmdline = proc.info["name"] or "", " ".join(proc.info["cmdline"] or [])
            if part is None and name.startswith(("postgres", "postmaster")):
                part = "postgres"
            elif part is None and ("secantus" in cmdline or name.startswith("mongod")):
                part = "mongo-wire"
            elif part is None and name.startswith("redis"):
                part = "redis"
            if part is not None:
                times = proc.cpu_times()
                totals[part] += times.user + times.system
        except psutil.Error:
            continue
    return totals


def tree_pids(process: subprocess.Popen[bytes] | None) -> set[int]:
    if process is None or process.poll() is not None:
        return set()
    try:
        return {proc.pid for proc in server_tree(process)}
    except psutil.Error:
        return set()


async def step(
    shop: Shop, flow: Flow, rate: float, seconds: float, target: Target = SERVICE
) -> StepResult:
    """One open-loop step, with each part's CPU per completed request beside it (the API's,
    or the control's for the control's steps, under ``api_cpu_ms_per_request``)."""
    cpu_before = cpu_by_part(shop)
    result = await open_loop(target.session(shop), flow, rate, seconds)
    cpu_after = cpu_by_part(shop)
    done = max(1, result.completed)
    result.extra["api_cpu_ms_per_request"] = round(
        (cpu_after[target.part] - cpu_before[target.part]) * 1000 / done, 2
    )
    result.extra["cpu_ms_per_request"] = {
        part: round((cpu_after[part] - cpu_before[part]) * 1000 / done, 2) for part in cpu_after
    }
    await settle(shop, target.part)
    return result


async def settle(shop: Shop, part: str = "api", *, within: float = 180) -> None:
    """Until the server and the stores are idle again: requests the generator gave up on
    (timeouts) may still be queued in the server, and their queries in a store, after a step
    it could not keep up with; the next step must not pay for them."""
    deadline = time.monotonic() + within
    watched = [part, "postgres", "mongo-wire", "redis"]
    while time.monotonic() < deadline:
        before = cpu_by_part(shop)
        await asyncio.sleep(0.5)
        after = cpu_by_part(shop)
        if all(after[name] - before[name] < 0.05 for name in watched):  # under 10 % of a core
            return


async def find_knee(
    shop: Shop,
    scenario: Scenario,
    make_flow: Callable[[float], Awaitable[Flow]],
    plan: Plan,
    start: float,
    limit: float = 50_000,
    target: Target = SERVICE,
) -> None:
    """Raise the rate until a step breaks the bound, then bisect between the last two. A
    step breaks it only if it does so twice: on a shared machine one hiccup (another
    tenant, a collection) lifts a short step's p99 over the bound at any rate."""

    async def measured(rate: float) -> StepResult:
        result = await step(shop, await make_flow(rate), rate, plan.step_s, target)
        scenario.steps.append(result.summary())
        if result.holds(P99_BOUND_MS) or not plan.fixed_steps:
            return result
        again = await step(shop, await make_flow(rate), rate, plan.step_s, target)
        scenario.steps.append(again.summary())
        return again

    held: StepResult | None = None
    broke: StepResult | None = None
    rate = start
    for _ in range(plan.rising_steps):
        if rate > limit:
            break
        result = await measured(rate)
        if not result.holds(P99_BOUND_MS):
            broke = result
            break
        held = result
        rate *= plan.factor
    for _ in range(plan.refine if held is not None and broke is not None else 0):
        assert held is not None
        assert broke is not None
        rate = (held.rate + broke.rate) / 2
        result = await measured(rate)
        if result.holds(P99_BOUND_MS):
            held = result
        else:
            broke = result
    scenario.knee = held.summary() if held is not None else None


def steady(flow: Flow) -> Callable[[float], Awaitable[Flow]]:
    async def same(_rate: float) -> Flow:
        return flow

    return same


# ------------------------------------------------------------------ the service's set-up


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(shop: Shop, request: Request) -> Any:
    ok, what, body = await send(shop.session, request)
    if not ok:
        raise RuntimeError(f"{request.method} {request.path}: {what} {body[:300]!r}")
    return msgspec.json.decode(body) if body else None


async def sign_in(shop: Shop, email: str, password: str) -> dict[str, str]:
    body = msgspec.json.encode({"email": email, "password": password})
    answer = await call(shop, Request("POST", "/auth/token", JSON, body))
    return bearer(answer["access_token"])


async def gathered(
    count: int, make: Callable[[int], Awaitable[Any]], at_once: int = 16
) -> list[Any]:
    gate = asyncio.Semaphore(at_once)

    async def one(number: int) -> Any:
        async with gate:
            return await make(number)

    return await asyncio.gather(*(one(number) for number in range(count)))


async def wait_ready(shop: Shop) -> None:
    deadline = time.monotonic() + 120
    log = shop.stores.data_dir / "api.log"
    while time.monotonic() < deadline:
        if shop.api.poll() is not None:
            raise RuntimeError(f"the API exited: {log.read_text(errors='replace')[-2000:]}")
        ok, _, _ = await send(shop.session, Request("GET", "/health/ready"))
        if ok:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the API was not ready within 120 s (log: {log})")


async def populate(shop: Shop, plan: Plan) -> None:
    """Products (stock enough for any run) and signed-in customers, visible in the views."""
    shop.admin = await sign_in(shop, *ADMIN)
    shop.skus = [f"P-{n:05d}" for n in range(plan.products)]

    async def product(number: int) -> None:
        body = {"sku": shop.skus[number], "name": f"Perf product {number}",
                "price": {"amount": 100 + number, "currency": "EUR"}, "stock": 10**9}  # fmt: skip
        headers = {**JSON, **shop.admin}
        await call(shop, Request("POST", "/products", headers, msgspec.json.encode(body), {201}))

    async def customer(number: int) -> Customer:
        email, password = f"perf-{uuid.uuid4().hex[:8]}-{number}@example.com", "perf password 1"
        body = msgspec.json.encode({"email": email, "password": password, "name": f"P {number}"})
        made = await call(shop, Request("POST", "/users", JSON, body, {201}))
        return Customer(made["id"], await sign_in(shop, email, password))

    await gathered(plan.products, product)
    shop.customers = await gathered(plan.customers, customer, at_once=4)
    # Reads come from the views: wait until the projector has caught up with the products.
    deadline = time.monotonic() + 300
    pending = list(shop.skus)
    while pending and time.monotonic() < deadline:
        checks = await asyncio.gather(
            *(send(shop.session, Request("GET", f"/products/{sku}")) for sku in pending[:50])
        )
        pending = [sku for sku, (ok, _, _) in zip(pending[:50], checks, strict=True) if not ok] + (
            pending[50:]
        )
        if pending:
            await asyncio.sleep(0.2)
    if pending:
        raise RuntimeError(f"{len(pending)} products never reached the catalog view")


# ------------------------------------------------------------------ scenarios


async def database_ceiling(url: str, seconds: float, connections: int = 8) -> Scenario:
    """(g) Single-row insert+select transactions through psycopg, no service code."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as setup:
        await setup.execute(
            "CREATE TABLE IF NOT EXISTS perf_ceiling (id bigint GENERATED ALWAYS AS IDENTITY"
            " PRIMARY KEY, payload jsonb NOT NULL, created_at timestamptz DEFAULT now())"
        )
    latency = new_histogram()
    done = 0
    stop = time.monotonic() + seconds
    payload = json.dumps({"sku": "P-00001", "quantity": 1, "note": "x" * 200})

    async def loop() -> None:
        nonlocal done
        async with await psycopg.AsyncConnection.connect(url) as conn:
            while time.monotonic() < stop:
                started = time.monotonic()
                async with conn.transaction():
                    cursor = await conn.execute(
                        "INSERT INTO perf_ceiling (payload) VALUES (%s) RETURNING id",
                        (payload,),
                        prepare=True,
                    )
                    row = await cursor.fetchone()
                    assert row is not None
                    await conn.execute(
                        "SELECT payload FROM perf_ceiling WHERE id = %s", (row[0],), prepare=True
                    )
                latency.record_value(max(1, round((time.monotonic() - started) * 1e6)))
                done += 1

    cpu_before, started = time.process_time(), time.monotonic()
    await asyncio.gather(*(loop() for _ in range(connections)))
    wall = time.monotonic() - started
    scenario = Scenario("g", "database: insert+select transaction (psycopg)", "ceiling")
    scenario.knee = {
        "rate": round(done / wall, 1), "achieved_rate": round(done / wall, 1),
        "connections": connections, "p50_ms": _ms(latency, 50), "p90_ms": _ms(latency, 90),
        "p99_ms": _ms(latency, 99), "max_ms": round(latency.get_max_value() / 1000, 2),
        "errors": 0, "generator_cpu": round((time.process_time() - cpu_before) / wall, 2),
    }  # fmt: skip
    scenario.steps.append(scenario.knee)
    return scenario


async def read_store_ceilings(shop: Shop, seconds: float, skus: list[str]) -> list[Scenario]:
    """(m1) ``find_one`` by ``_id`` from the product view, 16 at a time, and (m2) version-
    guarded upserts in unordered ``bulk_write`` batches of 500 into a scratch collection:
    what the read store itself manages here, through the same driver, no service code."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(shop.stores.mongodb_url)
    database = client[shop.stores.database]
    rng = random.Random(5)
    latency = new_histogram()
    done = 0
    stop = time.monotonic() + seconds

    async def reader() -> None:
        nonlocal done
        view = database["product_catalog"]
        while time.monotonic() < stop:
            started = time.monotonic()
            found = await view.find_one({"_id": rng.choice(skus)})
            assert found is not None
            latency.record_value(max(1, round((time.monotonic() - started) * 1e6)))
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(reader() for _ in range(16)))
    reads = _ceiling("m1", "read store: find_one by _id (pymongo, 16 at a time)",
                     done / (time.monotonic() - started), latency)  # fmt: skip
    # Into a collection with the order view's indexes, of documents its size: the read
    # store's cost of a projected order, which every index of the view adds to.
    scratch = database[f"ceiling_{uuid.uuid4().hex[:6]}"]
    async for index in await database["order_views"].list_indexes():
        if index["name"] != "_id_":
            await scratch.create_index(list(index["key"].items()), name=index["name"])
    shape = _order_document(skus[:3])
    documents = 0
    latency = new_histogram()
    started = time.monotonic()
    stop = started + seconds
    while time.monotonic() < stop:
        batch_started = time.monotonic()
        batch = [
            UpdateOne({"_id": f"k{documents + n}", "version": {"$lt": 1}},
                      {"$set": {**shape, "sort_key": f"{documents + n:09d}", "version": 1}},
                      upsert=True)
            for n in range(500)
        ]  # fmt: skip
        await scratch.bulk_write(batch, ordered=False)
        latency.record_value(max(1, round((time.monotonic() - batch_started) * 1e6)))
        documents += len(batch)
    upserts = _ceiling("m2", "read store: guarded upserts of orders, bulk_write of 500",
                       documents / (time.monotonic() - started), latency)  # fmt: skip
    await scratch.drop()
    await client.close()
    return [reads, upserts]


def _order_document(skus: list[str]) -> dict[str, Any]:
    """An order view's document as a checkout leaves it (three lines), but its keys."""
    money = {"amount": 1250, "currency": "EUR"}
    lines = [{"sku": sku, "name": f"Perf product {sku}", "unit_price": money, "quantity": 1,
              "line_total": money} for sku in skus]  # fmt: skip
    now = datetime.now(UTC).isoformat()
    return {
        "customer_id": str(uuid.uuid4()), "status": "confirmed", "lines": lines,
        "total": {"amount": 1250 * len(lines), "currency": "EUR"}, "rejection_reason": None,
        "created_at": now, "updated_at": now,
    }  # fmt: skip


def _ceiling(key: str, title: str, rate: float, latency: HdrHistogram) -> Scenario:
    scenario = Scenario(key, title, "ceiling")
    scenario.knee = {
        "rate": round(rate, 1), "achieved_rate": round(rate, 1), "p50_ms": _ms(latency, 50),
        "p99_ms": _ms(latency, 99), "errors": 0,
    }  # fmt: skip
    scenario.steps.append(scenario.knee)
    return scenario


def _ms(histogram: HdrHistogram, percentile: float) -> float:
    return round(histogram.get_value_at_percentile(percentile) / 1000, 2)


async def health(shop: Shop, plan: Plan) -> Scenario:
    """(a) The framework ceiling: the cheapest route of the same app, through the same stack."""
    scenario = Scenario("a", "GET /health/live", "read")
    await find_knee(shop, scenario, steady(plain(lambda _n: Request("GET", "/health/live"))),
                    plan, start=250)  # fmt: skip
    return scenario


async def product_reads(shop: Shop, plan: Plan) -> list[Scenario]:
    """(b) Browsing: a hot product (served from the cache), any product of the catalog with
    the cache kept cold (its epoch bumped every 100 reads, as a rebuild does: every cached
    answer retires), and search by sku prefix (first pages cached, as the service does)."""
    rng = random.Random(7)
    hot = shop.skus[1]
    prefixes = sorted({sku[:-1] for sku in shop.skus})  # "P-0012" matches ten products
    redis = AsyncRedis.from_url(shop.stores.redis_url)
    bumps: set[asyncio.Task[Any]] = set()

    def uncached(number: int) -> Request:
        if number % 100 == 0:
            bump = asyncio.create_task(redis.incr(cache_generation_key("product_catalog")))
            bumps.add(bump)
            bump.add_done_callback(bumps.discard)
        return Request("GET", f"/products/{rng.choice(shop.skus)}")

    def search(_number: int) -> Request:
        return Request("GET", f"/products?q={rng.choice(prefixes)}&limit=20")

    made = []
    try:
        for key, title, make in [
            ("b1", "GET /products/{sku}, cached", lambda _n: Request("GET", f"/products/{hot}")),
            ("b2", "GET /products/{sku}, uncached", uncached),
            ("b3", "GET /products?q=<sku prefix>", search),
        ]:
            scenario = Scenario(key, title, "read")
            await find_knee(shop, scenario, steady(plain(make)), plan, start=100)
            if plan.fixed_steps and key in {"b1", "b2"}:
                # The read target: p99 under 20 ms at 1,000 requests a second.
                fixed = await step(shop, plain(make), 1000, plan.step_s)
                scenario.notes["at_1000_per_s"] = fixed.summary()
            made.append(scenario)
    finally:
        await redis.aclose()
    return made


async def order_creation(shop: Shop, plan: Plan, target: Target = SERVICE) -> Scenario:
    """(c) POST /orders with one item and a fresh Idempotency-Key each."""
    rng = random.Random(11)
    choice = shop.skus[:200]

    def create(number: int) -> Request:
        who = shop.customers[number % len(shop.customers)]
        body = msgspec.json.encode({"items": [{"sku": rng.choice(choice), "quantity": 1}]})
        headers = {**target.headers(who), "Idempotency-Key": uuid.uuid4().hex}
        return Request("POST", f"{target.prefix}/orders", headers, body, frozenset({201}))

    scenario = Scenario(*_named("c", "POST /orders (Idempotency-Key)", target))
    await find_knee(shop, scenario, steady(plain(create)), plan, start=20, target=target)
    return scenario


def _named(key: str, title: str, target: Target) -> tuple[str, str, str]:
    """A write scenario's key, title and kind: the service's, or its control's ("c0")."""
    if target is CONTROL:
        return f"{key}0", f"control of {key}: {title}, psycopg alone", "control"
    return key, title, "write"


async def drafts(
    shop: Shop, count: int, target: Target = SERVICE, *, items: int = 0
) -> list[tuple[str, dict[str, str]]]:
    """``count`` drafts (with ``items`` lines each), made through ``target``."""
    lines = [{"sku": sku, "quantity": 1} for sku in shop.skus[:items]]
    session = target.session(shop)

    async def draft(number: int) -> tuple[str, dict[str, str]]:
        headers = target.headers(shop.customers[number % len(shop.customers)])
        keyed = {**headers, "Idempotency-Key": uuid.uuid4().hex}
        body = msgspec.json.encode({"items": lines})
        ok, what, answer = await send(
            session, Request("POST", f"{target.prefix}/orders", keyed, body, frozenset({201}))
        )
        if not ok:
            raise RuntimeError(f"draft not made: {what} {answer[:300]!r}")
        return msgspec.json.decode(answer)["id"], headers

    return await gathered(count, draft)


async def cart_edits(shop: Shop, plan: Plan, target: Target = SERVICE) -> Scenario:
    """(d) POST /orders/{id}/items, each draft edited at most every `count / rate` seconds."""
    rng = random.Random(13)
    choice = shop.skus[:20]  # at most 20 lines per draft, whatever the rate
    bodies = [msgspec.json.encode({"sku": sku, "quantity": 1}) for sku in choice]

    async def make_flow(rate: float) -> Flow:
        carts = await drafts(shop, max(64, round(rate * plan.step_s / 40)), target)

        def add(number: int) -> Request:
            order_id, headers = carts[number % len(carts)]
            path = f"{target.prefix}/orders/{order_id}/items"
            return Request("POST", path, headers, rng.choice(bodies))

        return plain(add)

    scenario = Scenario(*_named("d", "POST /orders/{id}/items", target))
    await find_knee(shop, scenario, make_flow, plan, start=20, target=target)
    return scenario


async def confirmations(shop: Shop, plan: Plan, target: Target = SERVICE) -> Scenario:
    """(h) POST /orders/{id}/confirm, each of a draft of one line made for the step."""

    async def make_flow(rate: float) -> Flow:
        carts = await drafts(shop, round(rate * plan.step_s) + 1, target, items=1)

        def confirm(number: int) -> Request:
            order_id, headers = carts[number]
            path = f"{target.prefix}/orders/{order_id}/confirm"
            return Request("POST", path, headers, None, frozenset({200, 202}))

        return plain(confirm)

    scenario = Scenario(*_named("h", "POST /orders/{id}/confirm", target))
    await find_knee(shop, scenario, make_flow, plan, start=20, target=target)
    return scenario


OUTCOMES = ["confirmed", "rejected"]


WATCH_S = 0.02
# Per order waiting, the watch waits this much longer: a query over many orders costs the
# read store more, and a backlog must not be deepened by its own measurement.
WATCH_PER_WAITING_S = 0.001


class Visibility:
    """Watches the order view for orders leaving `pending`: confirm to outcome, as seen by reads.

    One query for every order still waiting (not one HTTP poll per order) every ``WATCH_S``,
    and a millisecond longer per order waiting, so the watching adds little load to the read
    store, which the projections it measures share, however many orders wait (a fixed 20 ms
    made it a query over hundreds of orders fifty times a second once a backlog formed: load
    on the Python read store that grew with the very backlog it measured). A latency is
    therefore late by up to the interval (half that on average): 20 ms, or 40 ms with 20
    orders waiting.
    """

    def __init__(self, mongodb_url: str, database: str) -> None:
        self._client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
        self._orders = self._client[database]["order_views"]
        self.waiting: dict[str, float] = {}
        self.latency = new_histogram()
        self.outcomes: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            if self.waiting:
                query = {"_id": {"$in": list(self.waiting)}, "status": {"$in": OUTCOMES}}
                async for seen in self._orders.find(query, {"status": 1}):
                    confirmed_at = self.waiting.pop(seen["_id"], None)
                    if confirmed_at is not None:
                        self.outcomes[seen["status"]] += 1
                        elapsed = time.monotonic() - confirmed_at
                        self.latency.record_value(max(1, round(elapsed * 1e6)))
            await asyncio.sleep(WATCH_S + WATCH_PER_WAITING_S * len(self.waiting))

    async def settled(self, within: float) -> int:
        """Wait for every watched order; the number that never showed an outcome."""
        deadline = time.monotonic() + within
        while self.waiting and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        missing = len(self.waiting)
        self.waiting.clear()
        return missing

    def take(self) -> dict[str, Any]:
        taken = {
            "visible_p50_ms": _ms(self.latency, 50), "visible_p90_ms": _ms(self.latency, 90),
            "visible_p99_ms": _ms(self.latency, 99),
            "visible_max_ms": round(self.latency.get_max_value() / 1000, 2),
            "outcomes": dict(self.outcomes),
        }  # fmt: skip
        self.latency, self.outcomes = new_histogram(), Counter()
        return taken

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._client.close()


def checkout_flow(shop: Shop, visibility: Visibility) -> Flow:
    """A checkout's five requests (create, 3 items, confirm); each confirmed order is watched
    from its confirm's send on."""
    rng = random.Random(17)
    choice = shop.skus[:200]

    async def checkout(
        number: int, scheduled: float, session: aiohttp.ClientSession, recorder: Recorder
    ) -> None:
        headers = SERVICE.headers(shop.customers[number % len(shop.customers)])
        ok, what, body = await send(session, Request("POST", "/orders", headers, b"{}", {201}))
        recorder.record(scheduled, ok, what)  # the first request counts from its schedule
        if not ok:
            return
        order_id = msgspec.json.decode(body)["id"]
        for sku in rng.sample(choice, 3):
            item = msgspec.json.encode({"sku": sku, "quantity": 1})
            started = time.monotonic()
            ok, what, _ = await send(session, Request("POST", f"/orders/{order_id}/items",
                                                      headers, item))  # fmt: skip
            recorder.record(started, ok, what)
            if not ok:
                return
        started = time.monotonic()
        ok, what, _ = await send(
            session, Request("POST", f"/orders/{order_id}/confirm", headers, None, {202})
        )
        recorder.record(started, ok, what)
        if ok:
            visibility.waiting[order_id] = started

    return checkout


async def checkouts(shop: Shop, plan: Plan) -> Scenario:
    """(e) Arrivals of whole checkouts: create, add 3 items, confirm (five requests)."""
    visibility = Visibility(shop.stores.mongodb_url, shop.stores.database)
    visibility.start()
    checkout = checkout_flow(shop, visibility)

    scenario = Scenario("e", "checkout: create, 3 items, confirm", "write")
    try:
        # The targets' rates (the quick run: the first two, briefly): confirm to confirmed
        # visible p50 < 150 ms and p99 < 500 ms at 5/s, p99 < 1 s at 20/s, 50/s sustained.
        rates = CHECKOUT_RATES if plan.fixed_steps else CHECKOUT_RATES[:2]
        seconds = plan.step_s * 2 if plan.fixed_steps else plan.step_s
        for rate in rates:
            result = await step(shop, checkout, rate, seconds)
            # Generous: an order still unseen this long after the step is lost, not slow.
            result.extra["never_visible"] = await visibility.settled(within=60)
            result.extra.update(visibility.take())
            result.extra["checkouts"] = result.scheduled
            scenario.steps.append(result.summary())
            scenario.notes[f"at_{rate}_per_s"] = result.summary()
            if result.holds(P99_BOUND_MS) and not result.extra["never_visible"]:
                scenario.knee = result.summary()
    finally:
        await visibility.close()
    return scenario


CHECKOUT_RATES = (5, 20, 50)


async def restart(shop: Shop, extra_env: dict[str, str]) -> None:
    """The API and the worker again, with ``extra_env`` (as the first ones, but for it)."""
    admin = {"SHOP_BOOTSTRAP_ADMIN_EMAIL": ADMIN[0], "SHOP_BOOTSTRAP_ADMIN_PASSWORD": ADMIN[1]}
    if shop.worker is not None:
        shop.exit_codes["worker (before the restart)"] = stop_server(shop.worker)
    shop.exit_codes["api (before the restart)"] = stop_server(shop.api)
    shop.api = shop.stores.start(command=API["uvicorn"](shop.stores.port),
                                 extra_env={**admin, **extra_env})  # fmt: skip
    shop.worker = shop.stores.start(command=WORKER, cpus=os.sched_getaffinity(0),
                                    extra_env=extra_env)  # fmt: skip
    await wait_ready(shop)
    pin_tree(shop.api)


async def quiet(shop: Shop, within: float = 600) -> None:
    """Until every event is relayed and handled, and the worker and the stores are idle: a
    step must not share the machine with a backlog left by the one before."""
    from shop_platform.backbone import Backbone  # noqa: PLC0415
    from shop_platform.contexts import CONTEXTS  # noqa: PLC0415

    queues = Backbone.of(CONTEXTS).queues
    redis = Redis.from_url(shop.stores.redis_url)
    try:
        deadline = time.monotonic() + within
        while unfinished(shop.stores, redis, queues) != (0, 0) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
    finally:
        redis.close()
    await settle(shop, "worker")


async def traced(shop: Shop, plan: Plan, add_item_rate: float) -> Scenario:
    """(t) Tracing on (every process exports to a local OTLP collector): what it costs the
    API per add-item request, beside the same step with tracing off just before, and where a
    checkout's time goes, hop by hop, from the traces of checkouts at 5/s."""
    from hops import checkout_hops  # noqa: PLC0415

    from shop_devkit.traces import TraceCollector  # noqa: PLC0415

    scenario = Scenario("t", "tracing on: its cost (add item), checkout hops", "write")
    seconds = plan.step_s * 2 if plan.fixed_steps else plan.step_s
    carts = await drafts(shop, 64, SERVICE)
    bodies = [msgspec.json.encode({"sku": sku, "quantity": 1}) for sku in shop.skus[:20]]
    add = plain(lambda n: Request("POST", f"/orders/{carts[n % 64][0]}/items",
                                  carts[n % 64][1], bodies[n % 20]))  # fmt: skip
    await quiet(shop)
    off = await step(shop, add, add_item_rate, seconds)
    collector = TraceCollector()
    collector.start()
    visibility = Visibility(shop.stores.mongodb_url, shop.stores.database)
    visibility.start()
    try:
        await restart(shop, {"SHOP_OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint})
        # A new process pays once for what the old one had (compiled statements, caches,
        # connections): warmed up by the same steps, unmeasured, before the measured ones.
        if plan.fixed_steps:
            await step(shop, add, add_item_rate, seconds)
            await step(shop, checkout_flow(shop, visibility), 5, seconds)
            await visibility.settled(within=60)
            visibility.take()
        await quiet(shop)
        on = await step(shop, add, add_item_rate, seconds)
        off_ms = off.extra["api_cpu_ms_per_request"]
        on_ms = on.extra["api_cpu_ms_per_request"]
        scenario.notes["cost"] = {
            "rate": add_item_rate, "off": off.summary(), "on": on.summary(),
            "api_cpu_ms_off": off_ms, "api_cpu_ms_on": on_ms,
            "ratio": round(on_ms / off_ms, 2) if off_ms else None,
        }  # fmt: skip
        scenario.steps += [off.summary(), on.summary()]
        await quiet(shop)
        collector.clear()
        result = await step(shop, checkout_flow(shop, visibility), 5, seconds)
        result.extra["never_visible"] = await visibility.settled(within=60)
        result.extra.update(visibility.take())
        scenario.steps.append(result.summary())
        # The exporters send in batches every few seconds: wait for every checkout's chain.
        deadline = time.monotonic() + 90  # generous: a busy machine exports late
        found = checkout_hops(collector.spans())
        confirmed = result.extra["outcomes"].get("confirmed", 0)
        while found["complete"] < confirmed and time.monotonic() < deadline:
            await asyncio.sleep(1)
            found = checkout_hops(collector.spans())
        scenario.notes.update(found)
        scenario.knee = on.summary()
    finally:
        await visibility.close()
        collector.stop()
    return scenario


def unfinished(stores: Stores, redis: Redis, queues: list[str]) -> tuple[int, int]:
    """(outbox rows not yet relayed, messages relayed but not yet handled)."""
    with psycopg.connect(libpq_url(stores.database_url), autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM messaging.outbox WHERE published_at IS NULL"
        ).fetchone()
    queued = sum(
        int(redis.hlen(f"{NAMESPACE}:{queue}{suffix}.msgs"))  # pyright: ignore[reportArgumentType]
        for queue in queues
        for suffix in ("", ".DQ")
    )
    return (int(row[0]) if row else 0), queued


def outbox_size(stores: Stores) -> int:
    with psycopg.connect(libpq_url(stores.database_url), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM messaging.outbox").fetchone()
    return int(row[0]) if row else 0


def backlog_drain(shop: Shop, queues: list[str]) -> Scenario:
    """(f) Start the worker on what c, d and h left in the outbox; time it to the last
    handled. Its rate counts every event relayed meanwhile: the backlog's, and the events
    its handlers published (a confirm's reservation, the order's confirmation...)."""
    redis: Redis = Redis.from_url(shop.stores.redis_url)
    backlog, _ = unfinished(shop.stores, redis, queues)
    published_before = outbox_size(shop.stores) - backlog
    cpu_before: dict[str, float] = {}
    shop.worker = shop.stores.start(command=WORKER, cpus=os.sched_getaffinity(0))
    first = None
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        waiting, queued = unfinished(shop.stores, redis, queues)
        if first is None and waiting < backlog:
            first = time.monotonic()  # the relay has started: the clock runs from here
            cpu_before = cpu_by_part(shop)
        if first is not None and waiting == 0 and queued == 0:
            break
        time.sleep(0.05)
    seconds = time.monotonic() - (first or deadline)
    cpu_after = cpu_by_part(shop)
    redis.close()
    relayed = outbox_size(shop.stores) - published_before
    scenario = Scenario("f", "event backlog drain (relay, handlers, projectors)", "write")
    scenario.knee = {
        "events": backlog, "relayed": relayed, "seconds": round(seconds, 2),
        "achieved_rate": round(relayed / seconds, 1) if seconds > 0 else 0.0,
        "cpu_ms_per_event": {
            part: round((cpu_after[part] - cpu_before.get(part, 0.0)) * 1000 / max(1, relayed), 2)
            for part in cpu_after
        },
    }  # fmt: skip
    scenario.steps.append(scenario.knee)
    return scenario


# ------------------------------------------------------------------ profiles, memory, report


@contextmanager
def profiled(server: subprocess.Popen[bytes], path: Path | None) -> Iterator[None]:
    """py-spy sampling the server's Python process while the block runs (collapsed stacks)."""
    if path is None:
        yield
        return
    python = server_tree(server)[-1]  # uv, then the Python process it started
    spy = subprocess.Popen(
        ["py-spy", "record", "--pid", str(python.pid), "--format", "raw", "--output", str(path),
         "--rate", "250", "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(0.5)
        yield
    finally:
        spy.send_signal(2)
        spy.wait(60)


_FRAME = re.compile(r"\((?P<file>[^:()]+):\d+\)$")


def where_time_goes(path: Path, top: int = 12) -> list[tuple[str, float]]:
    """Share of samples by the package of the innermost frame, from py-spy's collapsed stacks."""
    buckets: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        leaf = stack.rsplit(";", 1)[-1]
        match = _FRAME.search(leaf)
        file = match["file"] if match else leaf
        buckets[_package(file)] += int(count)
    total = sum(buckets.values()) or 1
    return [(name, round(100 * n / total, 1)) for name, n in buckets.most_common(top)]


def _package(file: str) -> str:
    # py-spy names files from their import root: "sqlalchemy/engine/base.py", "asyncio/..."
    for marker in ("site-packages/", "/src/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return file.split("/", 1)[0].removesuffix(".py") or "?"


def rss_mb(process: subprocess.Popen[bytes] | None) -> list[float]:
    if process is None or process.poll() is not None:
        return []
    sizes = []
    for proc in server_tree(process)[1:]:  # not `uv run` itself
        try:
            sizes.append(round(proc.memory_info().rss / 2**20, 1))
        except psutil.Error:
            continue
    return sizes


# Which figure each scenario is a ratio of: the framework's for reads, the read store's own
# for what it bounds, and for each write route its control.
CEILING_OF = {
    "b1": "a", "b2": "m1", "b3": "a", "c": "c0", "d": "d0", "h": "h0",
    "c0": "g", "d0": "g", "h0": "g", "f": "m2", "i": "g2", "i1": "g2",
}  # fmt: skip


def ratio(scenario: Scenario, by_key: dict[str, Scenario]) -> float | None:
    ceiling = by_key.get(CEILING_OF.get(scenario.key, ""))
    if not scenario.knee or ceiling is None or not ceiling.knee:
        return None
    if not ceiling.knee.get("achieved_rate"):
        return None
    return round(scenario.knee["achieved_rate"] / ceiling.knee["achieved_rate"], 3)


@dataclass(frozen=True)
class Goal:
    """One target of the performance issue, read off the report."""

    name: str
    value: float | None
    bound: float
    unit: str
    at_most: bool = False  # a bound from above (CPU, latency, memory); else from below

    def row(self) -> dict[str, Any]:
        holds = None
        if self.value is not None:
            holds = self.value <= self.bound if self.at_most else self.value >= self.bound
        return {"name": self.name, "value": self.value, "bound": self.bound, "unit": self.unit,
                "at_most": self.at_most, "holds": holds}  # fmt: skip


def _knee(by_key: dict[str, Scenario], key: str, field_name: str) -> float | None:
    scenario = by_key.get(key)
    if scenario is None or not scenario.knee:
        return None
    value = scenario.knee.get(field_name)
    return None if value is None else float(value)


def _cpu_ratio(by_key: dict[str, Scenario], key: str) -> float | None:
    """The service's CPU per request over its control's, side by side at the same rate (the
    median of the rounds), or else each at its own knee."""
    scenario = by_key.get(key)
    side_by_side = None if scenario is None else scenario.notes.get("side_by_side")
    if side_by_side:
        return float(side_by_side["ratio"])
    mine = _knee(by_key, key, "api_cpu_ms_per_request")
    control = _knee(by_key, f"{key}0", "api_cpu_ms_per_request")
    return None if mine is None or not control else round(mine / control, 2)


def _at(by_key: dict[str, Scenario], rate: int, field_name: str) -> float | None:
    scenario = by_key.get("e")
    fixed = None if scenario is None else scenario.notes.get(f"at_{rate}_per_s")
    if fixed is None:
        return None
    if field_name == "sustained":
        # Every checkout went through, every order reached its outcome, and within the 5 s
        # API.md promises: the pipeline kept up, its backlog did not grow through the step.
        outcomes = sum(fixed["outcomes"].values())
        held = outcomes == fixed["checkouts"] and not fixed["never_visible"]
        return 1.0 if held and not fixed["errors"] and fixed["visible_p99_ms"] < 5000 else 0.0
    if field_name.startswith("visible_") and (fixed["never_visible"] or not fixed["outcomes"]):
        return math.inf  # some never showed: their latency is unbounded, whatever the others'
    return fixed.get(field_name)


def goals(by_key: dict[str, Scenario], rss: dict[str, list[float]]) -> list[dict[str, Any]]:
    made = []
    for key, route in [("c", "POST /orders (key)"), ("d", "add item"), ("h", "confirm")]:
        made += [
            Goal(f"write {key}: {route}, API CPU / its control's", _cpu_ratio(by_key, key),
                 1.6, "x", at_most=True),
            Goal(f"write {key}: {route}, knee", _knee(by_key, key, "achieved_rate"), 300, "req/s"),
        ]  # fmt: skip
    scenario_ratio = {key: ratio(s, by_key) for key, s in by_key.items()}
    made += [
        Goal("checkout at 5/s: confirm to confirmed visible, p50", _at(by_key, 5, "visible_p50_ms"),
             150, "ms", at_most=True),
        Goal("checkout at 5/s: visible p99", _at(by_key, 5, "visible_p99_ms"), 500, "ms",
             at_most=True),
        Goal("checkout at 20/s: visible p99", _at(by_key, 20, "visible_p99_ms"), 1000, "ms",
             at_most=True),
        Goal("checkout at 50/s sustained (1 = yes)", _at(by_key, 50, "sustained"), 1, ""),
        Goal("drain f / read store's bulk-upsert ceiling", scenario_ratio.get("f"), 0.7, "x"),
        Goal("backbone drain without projections (i)", _knee(by_key, "i", "achieved_rate"),
             3000, "events/s"),
        Goal("cached product read b1 / /health/live's knee", scenario_ratio.get("b1"), 0.6, "x"),
        Goal("uncached product read b2 / read store's find_one", scenario_ratio.get("b2"), 0.5,
             "x"),
        Goal("API RSS after the run", max(rss.get("api") or [0.0]) or None, 200, "MB",
             at_most=True),
    ]  # fmt: skip
    return [goal.row() for goal in made]


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Machine: {report['machine']}; {report['date']}; `{report['command']}`",
        "",
        "| scenario | knee (req/s) | p50 ms | p99 ms | ceiling | x ceiling | API CPU ms/req "
        "| gen. CPU |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for scenario in report["scenarios"]:
        knee = scenario["knee"] or {}
        cells = [
            f"{scenario['key']}: {scenario['title']}",
            f"{knee.get('achieved_rate', '-')}",
            f"{knee.get('p50_ms', '-')}",
            f"{knee.get('p99_ms', '-')}",
            scenario.get("ceiling") or "-",
            "-" if scenario["ratio"] is None else f"{scenario['ratio']:.2f}",
            f"{knee.get('api_cpu_ms_per_request', '-')}",
            f"{knee.get('generator_cpu', '-')}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| target | measured | bound | holds |", "| --- | ---: | ---: | --- |"]
    for goal in report.get("goals", []):
        value = "-" if goal["value"] is None else f"{goal['value']:g} {goal['unit']}".strip()
        bound = f"{'<=' if goal['at_most'] else '>='} {goal['bound']:g} {goal['unit']}".strip()
        holds = {True: "yes", False: "no", None: "not measured"}[goal["holds"]]
        lines.append(f"| {goal['name']} | {value} | {bound} | {holds} |")
    lines += ["", "CPU ms per request at the knee (per event for f and i), by part:", "",
              "| scenario | " + " | ".join(PARTS) + " |",
              "| --- |" + " ---: |" * len(PARTS)]  # fmt: skip
    for scenario in report["scenarios"]:
        knee = scenario["knee"] or {}
        split = knee.get("cpu_ms_per_request") or knee.get("cpu_ms_per_event")
        if split:
            cells = [str(split.get(part, "-")) for part in PARTS]
            lines.append(f"| {scenario['key']} | " + " | ".join(cells) + " |")
    lines += ["", "Fixed-rate steps (the targets):", ""]
    for scenario in report["scenarios"]:
        for name, fixed in scenario["notes"].items():
            if name.startswith("at_"):
                shown = {k: v for k, v in fixed.items() if k != "error_samples"}
                lines.append(f"- {scenario['key']} {name}: {json.dumps(shown)}")
    traced = next((s["notes"] for s in report["scenarios"] if s["key"] == "t"), {})
    if cost := traced.get("cost"):
        lines += [
            "",
            f"Tracing's cost: add item at {cost['rate']}/s, API CPU ms per request "
            f"{cost['api_cpu_ms_off']} off, {cost['api_cpu_ms_on']} on ({cost['ratio']}x)",
        ]
    if hops := traced.get("hops"):
        lines += [
            "",
            f"Checkout hops at 5/s, traced ({traced['complete']} complete chains of "
            f"{traced['checkouts_traced']} traced checkouts), ms:",
            "",
        ]
        lines += ["| hop | p50 | p90 | p99 | spans |", "| --- | ---: | ---: | ---: | ---: |"]
        for hop in hops:
            lines.append(
                f"| {hop['hop']} | {hop['p50_ms']} | {hop['p90_ms']} | {hop['p99_ms']} "
                f"| {hop['count']} |"
            )
    lines += ["", f"Memory after the runs: {json.dumps(report['rss_mb'])}"]
    for name, shares in report.get("profiles", {}).items():
        lines.append(f"- profile {name}: " + ", ".join(f"{p} {s}%" for p, s in shares))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the run


async def run(shop: Shop, plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    from shop_platform.backbone import Backbone  # noqa: PLC0415
    from shop_platform.contexts import CONTEXTS  # noqa: PLC0415

    await wait_ready(shop)
    affinities = pin_tree(shop.api)
    await populate(shop, plan)
    profiles: dict[str, list[tuple[str, float]]] = {}
    wanted = set(args.only.split(",")) if args.only else set(SCENARIOS)
    scenarios = Measured(args.out / "partial-results.json")
    if "g" in wanted:
        scenarios.append(
            await database_ceiling(libpq_url(shop.stores.database_url), plan.ceiling_s)
        )
    if "m" in wanted:
        scenarios += await read_store_ceilings(shop, plan.ceiling_s, shop.skus)
    if "a" in wanted:
        scenarios.append(await health(shop, plan))
    if "b" in wanted:
        scenarios += await product_reads(shop, plan)
    # The writes run alone on the API and the database: the worker stops, and drains later.
    writes = [("c", order_creation), ("d", cart_edits), ("h", confirmations)]
    if wanted & {"c", "d", "h", "f"}:
        assert shop.worker is not None
        stop_server(shop.worker)
        shop.worker = None
        for key, scenario in writes:
            if key in wanted:
                scenarios.append(await scenario(shop, plan, SERVICE))
                if made := await profile(shop, plan, args, scenarios[-1]):
                    profiles[made[0]] = made[1]
        if wanted & {"c", "d", "h"}:
            async with control(shop):
                for key, scenario in writes:
                    if key in wanted:
                        scenarios.append(await scenario(shop, plan, CONTROL))
                        await at_the_same_rate(shop, plan, scenarios, key)
                        if made := await profile(shop, plan, args, scenarios[-1], CONTROL):
                            profiles[made[0]] = made[1]
        if "f" in wanted:
            events = outbox_size(shop.stores)
            scenarios.append(backlog_drain(shop, Backbone.of(CONTEXTS).queues))
            scenarios[-1].notes["outbox_rows_in_total"] = events
        else:  # the worker again: what the writes left drains meanwhile, unmeasured
            shop.worker = shop.stores.start(command=WORKER, cpus=os.sched_getaffinity(0))
    if "e" in wanted:
        # Not beside what the writes left to drain: a checkout's view would wait behind it.
        await quiet(shop)
        scenarios.append(await checkouts(shop, plan))
    by_key = {scenario.key: scenario for scenario in scenarios}
    for key in ("b1", "b2"):
        if made := await profile(shop, plan, args, by_key.get(key)):
            profiles[made[0]] = made[1]
    rss = {"api": rss_mb(shop.api), "worker": rss_mb(shop.worker)}
    if "t" in wanted:  # after the memory figures: it restarts the API and the worker
        if shop.worker is None:
            shop.worker = shop.stores.start(command=WORKER, cpus=os.sched_getaffinity(0))
        rate = _knee(by_key, "d", "achieved_rate") or 50.0
        scenarios.append(await traced(shop, plan, min(rate, 200.0)))
        by_key = {scenario.key: scenario for scenario in scenarios}
    if "i" in wanted:  # last: its own worker programs, with the shop's stopped
        if shop.worker is not None:
            shop.exit_codes["worker"] = stop_server(shop.worker)
            shop.worker = None
        scenarios += await backbone_alone(shop, plan)
        by_key = {scenario.key: scenario for scenario in scenarios}
    return {
        "machine": f"{platform.node()} {os.cpu_count()} CPUs, {platform.python_version()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["uv run python tests/perf/harness.py", *args.argv]),
        "server": args.server,
        "p99_bound_ms": P99_BOUND_MS,
        "api_affinity": affinities,
        "generator_affinity": sorted(os.sched_getaffinity(0)),
        "goals": goals(by_key, rss),
        "scenarios": scenario_rows(scenarios),
        "rss_mb": rss,
        "profiles": profiles,
    }


class Measured(list[Scenario]):
    """The scenarios measured so far, written to ``path`` as each one ends: a run cut short
    (a machine taken back, a scenario that hangs) keeps what it measured."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def append(self, scenario: Scenario) -> None:
        super().append(scenario)
        self._keep()

    def __iadd__(self, scenarios: Iterable[Scenario]) -> Self:  # type: ignore[override]
        super().__iadd__(scenarios)
        self._keep()
        return self

    def _keep(self) -> None:
        self.path.write_text(json.dumps(scenario_rows(self), indent=2, default=str))


def scenario_rows(scenarios: list[Scenario]) -> list[dict[str, Any]]:
    """The scenarios as the report lists them, each with its ceiling and ratio when the
    ceiling was measured too."""
    by_key = {scenario.key: scenario for scenario in scenarios}
    return [
        {
            "key": s.key,
            "title": s.title,
            "kind": s.kind,
            "knee": s.knee,
            "ceiling": CEILING_OF.get(s.key) if CEILING_OF.get(s.key) in by_key else None,
            "ratio": ratio(s, by_key),
            "notes": s.notes,
            "steps": s.steps,
        }
        for s in scenarios
    ]


# Every scenario letter --only takes: m the read store's ceilings, t tracing on, i the
# backbone alone.
SCENARIOS = "gmabcdhfeti"


@asynccontextmanager
async def control(shop: Shop) -> AsyncIterator[None]:
    """The control app (control_app.py) on the service's database, pinned as the API is."""
    port = free_port()
    argv = ("python", "tests/perf/control_app.py", "--database-url",
            libpq_url(shop.stores.database_url), "--port", str(port))  # fmt: skip
    shop.control = shop.stores.start(command=argv)
    shop.control_session = client_session(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            probe = Request("GET", "/control/orders", ok=frozenset({405}))  # up: it routes
            ok, what, _ = await send(shop.control_session, probe)
            if ok:
                break
            if shop.control.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the control did not start: {what}")
            await asyncio.sleep(0.2)
        pin_tree(shop.control)
        yield
    finally:
        await shop.control_session.close()
        stop_server(shop.control)
        shop.control = shop.control_session = None


SIDE_BY_SIDE_ROUNDS = 3


async def at_the_same_rate(shop: Shop, plan: Plan, scenarios: list[Scenario], key: str) -> None:
    """The service and its control side by side at the rate of the service's knee, in turn,
    ``SIDE_BY_SIDE_ROUNDS`` times: CPU per request is compared at the same load (at a lower
    rate a server's fixed work weighs more on each request), and the median of the rounds'
    ratios is taken (a step's CPU figure on a shared machine wanders by a tenth or more)."""
    service = next((s for s in scenarios if s.key == key), None)
    if service is None or not service.steps:
        return
    # At the knee; or, if no step held the latency bound (a busy machine), at the lowest
    # rate tried: CPU per request compares at any rate, as long as it is the same one.
    rate = service.knee["rate"] if service.knee else min(step["rate"] for step in service.steps)
    seconds = plan.step_s if key != "h" else min(plan.step_s, 3900 / rate)
    rounds: list[dict[str, float]] = []
    for _ in range(SIDE_BY_SIDE_ROUNDS if plan.fixed_steps else 1):
        mine = await step(shop, await _profile_flow(shop, key, SERVICE), rate, seconds)
        theirs = await step(shop, await _profile_flow(shop, key, CONTROL), rate, seconds, CONTROL)
        service_ms = mine.extra["api_cpu_ms_per_request"]
        control_ms = theirs.extra["api_cpu_ms_per_request"]
        ratio = round(service_ms / control_ms, 2) if control_ms else 0.0
        rounds.append({"service_ms": service_ms, "control_ms": control_ms, "ratio": ratio})
    ratios = sorted(r["ratio"] for r in rounds)
    service.notes["side_by_side"] = {
        "rate": rate, "seconds": seconds, "rounds": rounds, "ratio": ratios[len(ratios) // 2],
    }  # fmt: skip


async def backbone_alone(shop: Shop, plan: Plan) -> list[Scenario]:
    """(i) The backbone without projections: a backlog of events committed at once, relayed
    and handled (an inbox row and an effect row each) by worker programs of a test context,
    on a database of its own; (g2) the database's own rate of transactions of that shape."""
    from bench_backbone import (  # noqa: PLC0415
        backbone_settings,
        backlog_drain,
        drop_database,
        handler_transactions,
    )

    settings = backbone_settings(shop.stores.database_url, shop.stores.redis_url,
                                 shop.stores.mongodb_url)  # fmt: skip
    try:
        size = 2_000 if plan.fixed_steps is False else 50_000
        ceiling = await handler_transactions(settings, min(size, 10_000))
        in_one = await backlog_drain(settings, size, "batch")
        each = await backlog_drain(settings, size, "delivery")
    finally:
        drop_database(settings)
    transactions = Scenario("g2", "database: an inbox row + an effect row a transaction",
                            "ceiling")  # fmt: skip
    transactions.knee = {"rate": round(ceiling, 1), "achieved_rate": round(ceiling, 1)}
    transactions.steps.append(transactions.knee)
    title = "backbone drain without projections (relay + handlers), a transaction per batch"
    return [
        transactions,
        _drained("i", title, in_one),
        _drained("i1", "the same, a transaction per event", each),
    ]


def _drained(key: str, title: str, drained: dict[str, Any]) -> Scenario:
    scenario = Scenario(key, title, "write")
    scenario.knee = {
        "events": drained["backlog"], "seconds": drained["seconds"],
        "achieved_rate": drained["end_to_end_events_per_s"],
        "cpu_ms_per_event": {
            "worker": drained["workers_cpu_ms_per_event"],
            "postgres": drained["postgres_cpu_ms_per_event"],
            "redis": drained["redis_cpu_ms_per_event"],
        },
    }  # fmt: skip
    scenario.steps.append(scenario.knee)
    return scenario


async def _profile_flow(shop: Shop, key: str, target: Target = SERVICE) -> Flow:
    """The requests of scenario ``key`` as its profile repeats them."""
    if key in {"c", "d", "h"}:
        carts = await drafts(shop, 4000 if key == "h" else 64, target, items=1)
        prefix = target.prefix
        if key == "c":
            body = msgspec.json.encode({"items": [{"sku": shop.skus[1], "quantity": 1}]})

            def keyed(n: int) -> dict[str, str]:
                return {**carts[n % 64][1], "Idempotency-Key": uuid.uuid4().hex}

            return plain(
                lambda n: Request("POST", f"{prefix}/orders", keyed(n), body, frozenset({201}))
            )
        if key == "h":
            return plain(lambda n: Request("POST", f"{prefix}/orders/{carts[n][0]}/confirm",
                                           carts[n][1], None, frozenset({200, 202})))  # fmt: skip
        body = msgspec.json.encode({"sku": shop.skus[0], "quantity": 1})
        return plain(lambda n: Request("POST", f"{prefix}/orders/{carts[n % 64][0]}/items",
                                       carts[n % 64][1], body))  # fmt: skip
    if key == "b1":
        return plain(lambda _n: Request("GET", f"/products/{shop.skus[1]}"))
    rng = random.Random(3)
    return plain(lambda _n: Request("GET", f"/products/{rng.choice(shop.skus)}"))


async def profile(
    shop: Shop,
    plan: Plan,
    args: argparse.Namespace,
    scenario: Scenario | None,
    target: Target = SERVICE,
) -> tuple[str, list[tuple[str, float]]] | None:
    """py-spy the server at the scenario's knee (its requests again, at least 10 s)."""
    if scenario is None or not scenario.knee or not args.profile:
        return None
    path = args.out / f"profile-{scenario.key}.txt"
    flow = await _profile_flow(shop, scenario.key[0], target)
    server = shop.control if target is CONTROL else shop.api
    assert server is not None
    rate = scenario.knee["rate"]
    seconds = max(plan.step_s, 10.0) if scenario.key[0] != "h" else min(10.0, 3900 / rate)
    with profiled(server, path):
        await step(shop, flow, rate, seconds, target)
    return scenario.key, where_time_goes(path)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    plan = Plan.of(args.quick)
    admin = {"SHOP_BOOTSTRAP_ADMIN_EMAIL": ADMIN[0], "SHOP_BOOTSTRAP_ADMIN_PASSWORD": ADMIN[1]}
    with bench_stores() as stores:
        api = stores.start(command=API[args.server](stores.port), extra_env=admin)
        worker = stores.start(command=WORKER, cpus=os.sched_getaffinity(0))
        if pinning():
            os.sched_setaffinity(0, {CLIENT_CPU})
        session = client_session(f"http://127.0.0.1:{stores.port}")
        shop = Shop(stores, api, worker, session)
        try:
            report = await run(shop, plan, args)
        finally:
            await session.close()
            report_codes = {**shop.exit_codes, "api": stop_server(shop.api)}
            if shop.worker is not None:
                report_codes["worker"] = stop_server(shop.worker)
            for log in stores.data_dir.glob("*.log"):  # kept beside the report
                shutil.copy(log, args.out / log.name)
        report["exit_codes"] = report_codes
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of under 2 minutes")
    parser.add_argument("--out", type=Path, default=Path("perf-results"))
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the API at the knees of b1, b2, c, d and h, and the control "
                             "at those of c0, d0 and h0")  # fmt: skip
    parser.add_argument("--only", help="scenario letters to run, comma-separated (default all)")
    parser.add_argument("--server", choices=["uvicorn", "granian"], default="uvicorn",
                        help="the API's ASGI server (uvicorn is what `shop api` runs)")  # fmt: skip
    args = parser.parse_args()
    args.argv = sys.argv[1:]
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    report = uvloop.run(main_async(args))
    report["harness_seconds"] = round(time.monotonic() - started, 1)
    (args.out / "results.json").write_text(json.dumps(report, indent=2, default=str))
    table = markdown(report)
    (args.out / "results.md").write_text(table)
    print(table)  # noqa: T201 - the table is the output


if __name__ == "__main__":
    main()
