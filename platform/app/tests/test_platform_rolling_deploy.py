"""A rolling deploy: two releases of a context run side by side, and no event is lost.

The newer release adds a subscriber (``AuditShelf``) and a new version of the event
(``test.ShelfStocked.v2``, which ``RecordEffect`` reads too). Each release runs as a worker
program of its own, each with its relay, on the session's real stores.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from backbone_support import (
    ShelfStocked,
    ShelfStockedV2,
    all_applied_once,
    eventually,
    publish,
    stop,
    worker_process,
)
from redis import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_devkit.plugin import MakeDatabase
from shop_kernel.messaging.broker import NAMESPACE
from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings
from shop_platform.contexts import migration_targets

pytestmark = pytest.mark.slow


@pytest.fixture
def settings(shop_settings: Settings, make_database: MakeDatabase) -> Settings:
    # A database of its own: the registry and the outbox hold only this test's releases.
    return shop_settings.with_overrides(
        database_url=make_database(migration_targets()), event_max_retries=2,
        event_min_backoff_ms=50,
    )  # fmt: skip


def v1(n: int) -> ShelfStocked:
    return ShelfStocked(aggregate_id=f"v1-{n}", aggregate_version=1, shelf=f"v1-{n}", quantity=n)


def v2(n: int) -> ShelfStockedV2:
    return ShelfStockedV2(aggregate_id=f"v2-{n}", aggregate_version=1, shelf=f"v2-{n}", quantity=n)


@contextmanager
def release(
    settings: Settings, module: ContextModule, *, newer: bool, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    worker = worker_process(
        settings, module, log=log, BACKBONE_TEST_RELEASE="newer" if newer else "older"
    )
    try:
        yield worker
    finally:
        stop(worker)


async def running_releases(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(text("SELECT count(DISTINCT release) FROM messaging.processes"))
            ).scalar_one()
        )


async def outbox_state(engine: AsyncEngine) -> tuple[int, int]:
    """(unpublished, parked) events."""
    async with engine.connect() as conn:
        row = (await conn.execute(text(
            "SELECT count(*) FILTER (WHERE published_at IS NULL AND parked_at IS NULL),"
            " count(*) FILTER (WHERE parked_at IS NOT NULL) FROM messaging.outbox"
        ))).one()  # fmt: skip
    return int(row[0]), int(row[1])


def dead_letters_of(settings: Settings, module: ContextModule) -> int:
    client = Redis.from_url(settings.redis_url or "")
    try:
        return sum(
            int(client.zcard(key))  # pyright: ignore[reportArgumentType]
            for key in client.scan_iter(f"{NAMESPACE}:{module.name}*.XQ")
        )
    finally:
        client.close()


async def test_two_releases_side_by_side_give_every_subscriber_of_every_event_it_once(
    settings: Settings, module: ContextModule, engine: AsyncEngine, views: Any, tmp_path: Path
) -> None:
    older = release(settings, module, newer=False, log=tmp_path / "older.log")
    newer = release(settings, module, newer=True, log=tmp_path / "newer.log")
    with older, newer:

        async def both_running() -> bool:
            return await running_releases(engine) >= 2

        await eventually(both_running, 60, "both releases registered")
        events: list[Any] = []
        for n in range(30):  # the newer release's API publishes both versions
            pair = [v1(n), v2(n)]
            events += pair
            await publish(engine, *pair)
        # Both relays relay, both workers take messages from the shared queues: the older
        # one hands back what only the newer one handles.
        await eventually(lambda: all_applied_once(engine, events), 90, "RecordEffect, v1 and v2")
        await eventually(
            lambda: all_applied_once(engine, events, "AuditShelf"), 90, "AuditShelf, v1 and v2"
        )

        async def projected() -> bool:
            shelves = [f"v1-{n}" for n in range(30)]
            return bool(await views.count_documents({"_id": {"$in": shelves}}) == 30)

        await eventually(projected, 60, "ShelfView of every v1 event")
    assert await outbox_state(engine) == (0, 0)
    assert dead_letters_of(settings, module) == 0


async def test_a_newer_releases_events_wait_parked_until_a_release_that_knows_them_runs(
    settings: Settings, module: ContextModule, engine: AsyncEngine, tmp_path: Path
) -> None:
    events = [v2(n) for n in range(10)]
    with release(settings, module, newer=False, log=tmp_path / "older.log"):

        async def registered() -> bool:
            return await running_releases(engine) >= 1

        await eventually(registered, 60, "the older release registered")
        await publish(engine, *events)  # the newer release's API is up; its workers are not

        async def parked() -> bool:
            return await outbox_state(engine) == (0, 10)

        await eventually(parked, 60, "the events nobody running knows, parked")
        listed = shop(settings, "events", "unrouted")
        assert "test.ShelfStocked.v2: 10 event(s)" in listed
        with release(settings, module, newer=True, log=tmp_path / "newer.log"):
            await eventually(lambda: all_applied_once(engine, events), 90, "v2, once it runs")
            await eventually(
                lambda: all_applied_once(engine, events, "AuditShelf"), 90, "AuditShelf of v2"
            )
    assert await outbox_state(engine) == (0, 0)
    assert "0 unrouted event(s)" in shop(settings, "events", "unrouted")
    assert dead_letters_of(settings, module) == 0


def shop(settings: Settings, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update(
        SHOP_DATABASE_URL=settings.database_url or "", SHOP_REDIS_URL=settings.redis_url or "",
        SHOP_MONGODB_URL=settings.mongodb_url or "", SHOP_LOG_LEVEL="WARNING",
    )  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "shop_platform.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout
