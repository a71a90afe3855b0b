"""The backbone's tables stay bounded: each is purged past its retention, in bounded batches,
on a schedule that continuous writes do not starve."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_devkit.plugin import MakeDatabase
from shop_kernel.messaging.dead_letters import REASONS_KEY
from shop_kernel.messaging.retention import RETENTION, Purged, Retention
from shop_kernel.messaging.tables import MIGRATIONS, idempotency_keys, inbox, outbox
from shop_kernel.schedules import Scheduled, run_once, run_schedules
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine


@pytest.fixture
async def engine(make_database: MakeDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Settings(database_url=make_database([MIGRATIONS])))
    yield engine
    await engine.dispose()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)  # pyright: ignore[reportUnknownMemberType]
    yield client
    await client.aclose()


def retention(
    engine: AsyncEngine, redis: Redis, *, outbox_s: float, inbox_s: float, batch: int
) -> Retention:
    settings = Settings(outbox_retention=outbox_s).with_overrides(inbox_retention=inbox_s)
    job = Retention(engine, redis, settings)
    job.namespace = f"test-{uuid.uuid4().hex[:8]}"  # dead letters of this test's own
    job.batch_size = batch
    return job


async def write(engine: AsyncEngine, count: int, *, age: timedelta = timedelta(0)) -> None:
    """``count`` published events, handled events and keyed answers, ``age`` old."""
    at = datetime.now(UTC) - age  # the test's clock is the database's: both on this host
    async with engine.begin() as conn:
        await conn.execute(insert(outbox), [{
            "event_id": uuid.uuid4(), "event_type": "test.Rung.v1", "aggregate_id": "a",
            "aggregate_version": 1, "payload": {}, "published_at": at,
        } for _ in range(count)])  # fmt: skip
        await conn.execute(insert(inbox), [
            {"subscriber": "tower.CountRings", "event_id": uuid.uuid4(),
             "processed_at": at}
            for _ in range(count)
        ])  # fmt: skip
        await conn.execute(insert(idempotency_keys), [{
            "caller": "user-1", "key_digest": uuid.uuid4().hex, "fingerprint": "f", "status": 201,
            "headers": [], "body": b"{}", "expires_at": at + timedelta(hours=24),
        } for _ in range(count)])  # fmt: skip


async def oldest_ages(engine: AsyncEngine) -> dict[str, float]:
    """Seconds since the oldest row of each table was published, handled or expired."""
    async with engine.connect() as conn:
        row = (await conn.execute(text(
            "SELECT"
            " (SELECT extract(epoch FROM now() - min(published_at)) FROM messaging.outbox),"
            " (SELECT extract(epoch FROM now() - min(processed_at)) FROM messaging.inbox),"
            " (SELECT count(*) FROM messaging.idempotency_keys WHERE expires_at <= now())"
        ))).one()  # fmt: skip
    return {"outbox": float(row[0] or 0), "inbox": float(row[1] or 0), "expired": float(row[2])}


async def count(engine: AsyncEngine) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        counts = [
            int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
            for table in (outbox, inbox, idempotency_keys)
        ]
    return counts[0], counts[1], counts[2]


async def test_rows_past_their_retention_go_in_batches_and_younger_ones_stay(
    engine: AsyncEngine, redis: Redis
) -> None:
    await write(engine, 250, age=timedelta(days=40))  # past every retention
    await write(engine, 7, age=timedelta(days=3))  # kept: within the outbox's 7 and inbox's 35
    job = retention(engine, redis, outbox_s=7 * 86_400, inbox_s=35 * 86_400, batch=100)
    purged = await job()
    # Answers are kept for their 24 h only: the three-day-old ones went too.
    assert purged.rows == {
        "messaging.outbox": 250, "messaging.inbox": 250, "messaging.idempotency_keys": 257,
    }  # fmt: skip
    assert max(purged.batches) == 100  # never one huge DELETE
    assert purged.batches.count(100) == 6  # 100 + 100 + the rest, for each table
    assert await count(engine) == (7, 7, 0)


async def test_the_outbox_and_the_inbox_keep_what_their_own_retention_says(
    engine: AsyncEngine, redis: Redis
) -> None:
    await write(engine, 3, age=timedelta(days=10))
    purged = await retention(engine, redis, outbox_s=7 * 86_400, inbox_s=35 * 86_400, batch=100)()
    assert purged.rows["messaging.outbox"] == 3
    assert purged.rows["messaging.inbox"] == 0  # ten days is well within the inbox's 35


async def test_continuous_writes_never_starve_the_purge_and_the_tables_stay_bounded(
    engine: AsyncEngine, redis: Redis
) -> None:
    job = retention(engine, redis, outbox_s=1.0, inbox_s=1.0, batch=50)
    stop = asyncio.Event()
    rounds: list[Purged] = []

    async def counted() -> Purged:
        rounds.append(await job())
        return rounds[-1]

    schedule = Scheduled(RETENTION, counted, interval=0.3)
    purging = asyncio.create_task(run_schedules(engine, [schedule], stop))
    worst: dict[str, float] = {"outbox": 0.0, "inbox": 0.0}
    written = 0
    try:
        for _ in range(60):  # about 6 s of writes, 40 rows of each kind every 0.1 s
            await write(engine, 40)
            written += 40
            await asyncio.sleep(0.1)
            ages = await oldest_ages(engine)
            worst = {table: max(value, ages[table]) for table, value in worst.items()}
    finally:
        stop.set()
        await purging
    assert len(rounds) >= 5
    assert sum(purged.rows.get("messaging.outbox", 0) for purged in rounds) > written / 2
    assert max(b for purged in rounds for b in purged.batches) <= 50
    # Nothing outlived its retention by more than a few rounds, though writes never paused.
    assert worst["outbox"] < 1.0 + 3.0, worst
    assert worst["inbox"] < 1.0 + 3.0, worst
    outbox_rows, inbox_rows, _ = await count(engine)
    assert outbox_rows < written / 2
    assert inbox_rows < written / 2


async def test_one_round_at_a_time_whatever_the_number_of_workers(engine: AsyncEngine) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow() -> None:
        started.set()
        await release.wait()

    first = asyncio.create_task(run_once(engine, Scheduled(RETENTION, slow, interval=1)))
    await started.wait()
    assert not await run_once(engine, Scheduled(RETENTION, slow, interval=1))  # skipped
    release.set()
    assert await first
    assert await run_once(engine, Scheduled(RETENTION, slow, interval=1))  # free again


async def test_the_reasons_of_dead_letters_that_are_gone_are_forgotten(
    engine: AsyncEngine, redis: Redis
) -> None:
    job = retention(engine, redis, outbox_s=7 * 86_400, inbox_s=35 * 86_400, batch=100)
    reasons = f"{job.namespace}:{REASONS_KEY}"
    # One dead letter still in its queue, two whose entries expired (or were replayed).
    await redis.zadd(f"{job.namespace}:orders.Confirm.XQ", {"kept-id": 1.0})  # pyright: ignore[reportUnknownMemberType]
    await redis.hset(reasons, mapping={"kept-id": "boom", "gone-1": "a@b", "gone-2": "x"})  # pyright: ignore[reportUnknownMemberType]
    try:
        purged = await job()
        assert purged.rows[REASONS_KEY] == 2
        assert await redis.hkeys(reasons) == [b"kept-id"]  # pyright: ignore[reportUnknownMemberType]
    finally:
        await redis.delete(reasons, f"{job.namespace}:orders.Confirm.XQ")
