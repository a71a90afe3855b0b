"""Benchmark of the event backbone: commit-to-projection lag and backlog drain rate.

Run: uv run python tests/perf/bench_backbone.py [--rate 200] [--seconds 20] [--backlog 100000]

Uses the servers named by SHOP_TEST_DATABASE_URL / SHOP_TEST_REDIS_URL / SHOP_TEST_MONGODB_URL,
and embedded ones for those unset. Reports numbers; it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import psycopg
from pymongo import AsyncMongoClient
from redis import Redis
from sqlalchemy import text

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "platform/app/tests"
sys.path.insert(0, str(SUPPORT))

from backbone_support import EFFECTS_DDL, ShelfStocked, shelf_module  # noqa: E402
from perf_support import percentile, servers  # noqa: E402

from shop_kernel.messaging.broker import NAMESPACE, create_broker, enqueue_many  # noqa: E402
from shop_kernel.messaging.relay import Relay  # noqa: E402
from shop_kernel.migrations import upgrade  # noqa: E402
from shop_kernel.redis_client import redis_of  # noqa: E402
from shop_kernel.settings import Settings  # noqa: E402
from shop_kernel.sql import create_engine, libpq_url  # noqa: E402
from shop_kernel.unit_of_work import UnitOfWork  # noqa: E402
from shop_platform.backbone import Backbone  # noqa: E402
from shop_platform.contexts import migration_targets  # noqa: E402


def fresh_settings(urls: dict[str, str]) -> Settings:
    redis_base = urls["redis"].rsplit("/", 1)[0] if urls["redis"].count("/") > 2 else urls["redis"]
    redis_url = f"{redis_base}/14"
    Redis.from_url(redis_url).flushdb()
    return backbone_settings(urls["postgres"], redis_url, urls["mongodb"])


def backbone_settings(postgres_url: str, redis_url: str, mongodb_url: str) -> Settings:
    """Settings on a fresh database (migrated, with the test module's effects table) of the
    server ``postgres_url`` names, and the Redis database ``redis_url`` names."""
    name = f"shop_bench_{uuid.uuid4().hex[:8]}"
    admin = libpq_url(postgres_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + "/" + name
    upgrade(url, migration_targets())
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in EFFECTS_DDL:
            conn.execute(statement)
    return Settings(
        database_url=url, redis_url=redis_url, mongodb_url=mongodb_url,
        mongodb_database=name, log_level="WARNING", event_max_retries=20,
    )  # fmt: skip


def drop_database(settings: Settings) -> None:
    url = libpq_url(settings.database_url or "")
    admin, name = url.rsplit("/", 1)
    with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_workers(
    settings: Settings, context: str, count: int, *, view: bool, transaction: str = "delivery"
) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update(
        SHOP_DATABASE_URL=settings.database_url or "", SHOP_REDIS_URL=settings.redis_url or "",
        SHOP_MONGODB_URL=settings.mongodb_url or "",
        SHOP_MONGODB_DATABASE=settings.mongodb_database,
        SHOP_LOG_LEVEL="WARNING", BACKBONE_TEST_CONTEXT=context,
        BACKBONE_TEST_VIEW="1" if view else "0", BACKBONE_TEST_TRANSACTION=transaction,
        PYTHONPATH=str(SUPPORT),
        dramatiq_worker_timeout=os.environ.get("BENCH_POLL_MS", "100"),
    )  # fmt: skip
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dramatiq",
                "backbone_support:setup",
                "--processes",
                os.environ.get("BENCH_PROCESSES", "2"),
                "--threads",
                os.environ.get("BENCH_THREADS", "4"),
            ],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


async def steady_lag(settings: Settings, rate: int, seconds: int) -> dict[str, Any]:
    """Publish ``rate`` events/s for ``seconds``; lag = projected_at - outbox.created_at."""
    context = f"lag{uuid.uuid4().hex[:6]}"
    Redis.from_url(settings.redis_url or "").delete(f"{NAMESPACE}:__heartbeats__")
    workers = start_workers(settings, context, 2, view=True)
    engine = create_engine(settings)
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    view = mongo[settings.mongodb_database]["backbone_shelves"]
    try:
        wait_for_consumers(settings, 2 * int(os.environ.get("BENCH_PROCESSES", "2")))
        events: list[ShelfStocked] = []
        pending: set[asyncio.Task[None]] = set()

        async def commit_one(event: ShelfStocked) -> None:
            async with UnitOfWork(engine) as uow:
                uow.publish(event)
                await uow.commit()

        # Open loop: each event is committed at its scheduled time, however slow the others.
        started = time.monotonic()
        for n in range(rate * seconds):
            due = started + n / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            event = ShelfStocked(
                aggregate_id=f"{context}-{n}",
                aggregate_version=1,
                shelf=f"{context}-{n}",
                quantity=1,
            )
            events.append(event)
            task = asyncio.create_task(commit_one(event))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        achieved = len(events) / (time.monotonic() - started)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if await view.count_documents({"_id": {"$regex": f"^{context}-"}}) == len(events):
                break
            await asyncio.sleep(0.5)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT aggregate_id, created_at FROM messaging.outbox "
                    "WHERE aggregate_id LIKE :p"
                ),
                {"p": f"{context}-%"},
            )
            committed = {row[0]: row[1] for row in rows}
        timeline = sorted([
            (
                committed[doc["_id"]],
                (
                    doc["projected_at"].replace(tzinfo=committed[doc["_id"]].tzinfo)
                    - committed[doc["_id"]]
                ).total_seconds(),
            )
            async for doc in view.find({"_id": {"$regex": f"^{context}-"}})
        ])  # fmt: skip
        lags = [lag for _, lag in timeline]
        if os.environ.get("BENCH_TIMELINE"):
            for second in range(seconds):
                chunk = lags[second * rate : (second + 1) * rate]
                if chunk:
                    print(second, round(max(chunk) * 1000), round(statistics.median(chunk) * 1000))  # noqa: T201
    finally:
        stop_workers(workers)
        await mongo.close()
        await engine.dispose()
    return {
        "target_rate": rate, "achieved_rate": round(achieved, 1), "events": len(events),
        "projected": len(lags),
        "lag_p50_ms": round(percentile(lags, 0.50) * 1000, 1),
        "lag_p99_ms": round(percentile(lags, 0.99) * 1000, 1),
        "lag_max_ms": round(max(lags) * 1000, 1),
        "lag_mean_ms": round(statistics.fmean(lags) * 1000, 1),
    }  # fmt: skip


def insert_backlog(url: str, context: str, size: int) -> None:
    """``size`` committed events in one transaction, as a burst of writers would leave them."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO messaging.outbox
                (event_id, event_type, aggregate_id, aggregate_version, payload)
            SELECT id, 'test.ShelfStocked.v1', %(c)s || '-' || n, 1, jsonb_build_object(
                'type', 'test.ShelfStocked.v1', 'event_id', id, 'aggregate_id', %(c)s || '-' || n,
                'aggregate_version', 1, 'occurred_at', to_char(now() AT TIME ZONE 'UTC',
                'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), 'shelf', %(c)s || '-' || n, 'quantity', 1)
            FROM (SELECT gen_random_uuid() AS id, n FROM generate_series(1, %(size)s) AS n) AS s
            """,
            {"c": context, "size": size},
        )
        conn.execute("NOTIFY shop_outbox")


async def relay_alone(settings: Settings, size: int) -> dict[str, Any]:
    """The relay by itself: outbox rows to Redis messages, nobody consuming them."""
    context = f"relay{uuid.uuid4().hex[:6]}"
    module = shelf_module(context, with_view=False)
    insert_backlog(libpq_url(settings.database_url or ""), context, size)
    broker = create_broker(settings.redis_url or "")
    engine = create_engine(settings)
    relay = Relay(
        engine, settings.database_url or "", lambda messages: enqueue_many(broker, messages),
        release=Backbone.of([module]).release, release_ttl=timedelta(hours=1), batch_size=1000,
    )  # fmt: skip
    started = time.monotonic()
    relayed = await relay.drain()
    seconds = time.monotonic() - started
    await engine.dispose()
    redis = redis_of(broker)
    for key in redis.scan_iter(f"{NAMESPACE}:{context}*"):
        redis.delete(key)
    return {"backlog": size, "relayed": relayed, "relay_events_per_s": round(relayed / seconds)}


def cpu_seconds(workers: list[subprocess.Popen[bytes]]) -> dict[str, float]:
    """CPU seconds used so far by the worker programs, PostgreSQL and Redis (all processes)."""
    totals = {"workers": 0.0, "postgres": 0.0, "redis": 0.0}
    pids = {worker.pid for worker in workers}
    for proc in psutil.process_iter(["pid", "name", "ppid"]):
        try:
            times = proc.cpu_times()
            name = proc.info["name"] or ""
            if proc.info["pid"] in pids or proc.info["ppid"] in pids:
                totals["workers"] += times.user + times.system
            elif name.startswith(("postgres", "postmaster")):
                totals["postgres"] += times.user + times.system
            elif name.startswith("redis"):
                totals["redis"] += times.user + times.system
        except psutil.Error:
            continue
    return totals


def wait_for_consumers(settings: Settings, count: int) -> None:
    """Until ``count`` worker processes fetch (Dramatiq records a heartbeat on each fetch)."""
    redis = Redis.from_url(settings.redis_url or "")
    deadline = time.monotonic() + 60
    while redis.zcard(f"{NAMESPACE}:__heartbeats__") < count:
        if time.monotonic() > deadline:
            raise RuntimeError("the workers did not start within 60 s")
        time.sleep(0.1)


async def backlog_drain(
    settings: Settings, size: int, transaction: str = "batch"
) -> dict[str, Any]:
    """The whole path as it runs in production: the worker programs relay and handle at once.

    The workers start first and idle; then ``size`` events commit at once. The clock runs
    from that commit until every event's inbox row exists. ``transaction`` is how the
    handler takes a batch: in one transaction (``batch``) or one per event (``delivery``).
    """
    context = f"drain{uuid.uuid4().hex[:6]}"
    url = libpq_url(settings.database_url or "")
    Redis.from_url(settings.redis_url or "").delete(f"{NAMESPACE}:__heartbeats__")
    processes = int(os.environ.get("BENCH_PROCESSES", "2"))
    workers = start_workers(settings, context, 2, view=False, transaction=transaction)
    try:
        wait_for_consumers(settings, 2 * processes)
        cpu_before = cpu_seconds(workers)
        started = time.monotonic()
        insert_backlog(url, context, size)
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                done = conn.execute(
                    "SELECT count(*) FROM messaging.inbox WHERE subscriber = %s",
                    (f"{context}.RecordEffect",),
                ).fetchone()
                handled = int(done[0]) if done else 0
                if handled >= size or time.monotonic() - started > 900:
                    break
                time.sleep(0.2)
        seconds = time.monotonic() - started
        cpu_after = cpu_seconds(workers)
    finally:
        stop_workers(workers)
    cpu_ms = {
        f"{part}_cpu_ms_per_event": round((cpu_after[part] - cpu_before[part]) * 1000 / size, 3)
        for part in cpu_before
    }
    return {
        "backlog": size, "handled": handled, "seconds": round(seconds, 1),
        "end_to_end_events_per_s": round(handled / seconds), **cpu_ms,
    }  # fmt: skip


async def ceilings(settings: Settings, n: int = 2000) -> dict[str, Any]:
    """What the stores themselves manage here, with no service code in the way.

    The read store's ceiling: concurrent single upserts (a projector's write). The write
    store's: raw psycopg transactions of an inbox row plus one effect row (a handler's shape).
    """
    return {
        "read_store_upserts_per_s": round(await read_store_upserts(settings, n)),
        "write_store_handler_transactions_per_s": round(await handler_transactions(settings, n)),
    }


async def read_store_upserts(settings: Settings, n: int) -> float:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    collection = mongo[settings.mongodb_database][f"ceiling_{uuid.uuid4().hex[:6]}"]
    gate = asyncio.Semaphore(16)

    async def upsert(i: int) -> None:
        async with gate:
            await collection.update_one(
                {"_id": f"k{i}", "version": {"$lt": 1}},
                {"$set": {"quantity": i, "version": 1}},
                upsert=True,
            )

    started = time.monotonic()
    await asyncio.gather(*(upsert(i) for i in range(n)))
    mongo_rate = n / (time.monotonic() - started)
    await mongo.close()
    return mongo_rate


async def handler_transactions(settings: Settings, n: int) -> float:
    """Transactions of a handler's shape (an inbox row, an effect row), 8 connections."""
    url = libpq_url(settings.database_url or "")
    pool = [await psycopg.AsyncConnection.connect(url) for _ in range(8)]
    free: asyncio.Queue[psycopg.AsyncConnection[Any]] = asyncio.Queue()
    for conn in pool:
        free.put_nowait(conn)

    async def transaction(i: int) -> None:
        conn = await free.get()
        try:
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO messaging.inbox (subscriber, event_id) VALUES (%s, %s) "
                    "ON CONFLICT DO NOTHING",
                    ("ceiling", uuid.uuid4()),
                )
                await conn.execute(
                    "INSERT INTO public.backbone_effects (subscriber, event_id, shelf) "
                    "VALUES ('ceiling', %s, %s)",
                    (uuid.uuid4(), f"k{i}"),
                )
        finally:
            free.put_nowait(conn)

    started = time.monotonic()
    await asyncio.gather(*(transaction(i) for i in range(n)))
    postgres_rate = n / (time.monotonic() - started)
    for conn in pool:
        await conn.close()
    return postgres_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--skip-lag", action="store_true")
    parser.add_argument("--skip-drain", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls, embedded = servers(Path(tmp))
        try:
            settings = fresh_settings(urls)
            report: dict[str, Any] = {"ceilings": asyncio.run(ceilings(settings))}
            if not args.skip_lag:
                report["steady_lag"] = asyncio.run(steady_lag(settings, args.rate, args.seconds))
            if not args.skip_drain:
                report["relay_alone"] = asyncio.run(relay_alone(settings, args.backlog))
                report["backlog_drain"] = asyncio.run(backlog_drain(settings, args.backlog))
        finally:
            embedded.stop()
    print(json.dumps(report, indent=2))  # noqa: T201 - the report is the output


if __name__ == "__main__":
    main()
