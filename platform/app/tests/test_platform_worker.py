"""The worker program: Redis broker, asyncio actors, stores opened on the worker's loop."""

from __future__ import annotations

import asyncio
import uuid

import dramatiq
from dramatiq import Worker
from redis import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.settings import Settings
from shop_platform.worker import WorkerResources, build_broker


def test_an_async_actor_runs_with_the_worker_stores_open(shop_settings: Settings) -> None:
    broker = build_broker(shop_settings)
    resources = next(m for m in broker.middleware if isinstance(m, WorkerResources))
    queue = f"probe-{uuid.uuid4().hex[:8]}"
    key = f"shop:test:{queue}"

    @dramatiq.actor(broker=broker, queue_name=queue, max_retries=0)
    async def probe(answer_key: str) -> None:  # pyright: ignore[reportUnusedFunction]
        assert resources.container is not None
        engine = resources.container.resolve(AsyncEngine)
        async with engine.connect() as conn:
            value = (await conn.execute(text("SELECT 41 + 1"))).scalar_one()
        loop = type(asyncio.get_running_loop()).__module__
        Redis.from_url(shop_settings.redis_url or "").set(answer_key, f"{value} on {loop}")

    broker.emit_after("process_boot")
    worker = Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        probe.send(key)
        # The probe's queue only: the session's other queues may hold other tests' retries.
        broker.join(queue, timeout=20_000)
    finally:
        worker.stop()
        broker.close()
    client = Redis.from_url(shop_settings.redis_url or "")
    try:
        # The actor ran on the worker's loop, which is uvloop's (cheaper per round trip).
        assert client.get(key) == b"42 on uvloop"
    finally:
        client.delete(key)
        client.close()
    assert resources.container is not None
