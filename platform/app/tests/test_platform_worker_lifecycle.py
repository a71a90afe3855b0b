"""A worker program's life: it takes messages only once it can work on them, finishes the ones
in hand when told to stop, and shares a host with other worker programs.

Each test runs real worker programs (Dramatiq's CLI, as `shop worker` runs it) of a context of
its own against the session's PostgreSQL, Redis and Mongo-wire server.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
from backbone_support import (
    STARTED,
    all_applied_once,
    eventually,
    log_lines,
    publish,
    stocked,
    stop,
    worker_process,
)
from redis import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_devkit.embedded import free_port
from shop_kernel.messaging.broker import NAMESPACE
from shop_kernel.messaging.events import encode_event, event_tag
from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings
from shop_platform.backbone import Backbone
from shop_platform.worker import build_broker, metrics_environment

pytestmark = pytest.mark.slow


def delayed(settings: Settings, queue: str) -> int:
    """Messages waiting for a retry on ``queue`` (Dramatiq's delay queue)."""
    client = Redis.from_url(settings.redis_url or "")
    try:
        return int(client.zcard(f"{NAMESPACE}:{queue}.DQ"))  # pyright: ignore[reportArgumentType]
    finally:
        client.close()


def retried_or_failed(log: Path) -> list[str]:
    """What the worker said about messages that failed or were retried."""
    return [
        line["event"] for line in log_lines(log)
        if re.search(r"Retrying|Failed to process|not open yet|Retries exceeded", line["event"])
    ]  # fmt: skip


async def test_a_projection_in_flight_finishes_after_sigterm_and_spends_no_retry(
    settings: Settings, module: ContextModule, engine: AsyncEngine, views: Any, tmp_path: Path
) -> None:
    event = stocked(view_sleep=3.0)
    log = tmp_path / "worker.log"
    worker = worker_process(settings, module, log=log)
    started = views.database[STARTED]
    try:
        await publish(engine, event)

        async def projecting() -> bool:
            return await started.find_one({"_id": str(event.event_id)}) is not None

        await eventually(projecting, 60, "the projection has begun")
        status = stop(worker)  # SIGTERM while the projector still sleeps
    finally:
        stop(worker)
    assert status == 0, log.read_text()[-3000:]
    view = await views.find_one({"_id": event.aggregate_id})
    assert view is not None, "the projection in hand did not finish"
    assert view["version"] == event.aggregate_version
    assert delayed(settings, f"{module.name}-projections") == 0
    assert retried_or_failed(log) == []


async def test_a_worker_started_with_messages_waiting_takes_none_before_its_stores_open(
    settings: Settings, module: ContextModule, engine: AsyncEngine, tmp_path: Path
) -> None:
    events = [stocked() for _ in range(30)]
    backbone = Backbone.of([module])
    sender = build_broker(settings, [module], background=False)  # only to enqueue: no worker here
    try:
        for route in backbone.routes:
            for event in events:
                sender.enqueue(
                    dramatiq.Message[None](
                        queue_name=route.queue_name, actor_name=route.actor_name,
                        args=(encode_event(event).decode(),), kwargs={},
                        options={"event_type": event_tag(type(event))},
                    )
                )  # fmt: skip
    finally:
        sender.close()
    log = tmp_path / "worker.log"
    worker = worker_process(settings, module, log=log)
    try:
        await eventually(lambda: all_applied_once(engine, events), 60, "the waiting messages")
    finally:
        assert stop(worker) == 0
    assert retried_or_failed(log) == []
    for queue in backbone.queues:
        assert delayed(settings, queue) == 0
    written = log.read_text()
    assert not any(event.shelf in written for event in events), "a payload was logged"


def _metrics_url(log: Path) -> str | None:
    served = [line for line in log_lines(log) if line.get("event") == "worker metrics served"]
    return served[-1]["url"] if served else None


def _handled(metrics: str, subscriber: str) -> float:
    """Events the subscriber handled, as a worker program's metrics count them (its
    messages may each carry several)."""
    found = re.search(
        rf'^shop_event_delivery_lag_seconds_count{{kind="handler",'
        rf'subscriber="{re.escape(subscriber)}"}} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    return float(found.group(1)) if found else 0.0


async def test_two_worker_programs_on_one_host_each_serve_their_own_metrics(
    settings: Settings, module: ContextModule, engine: AsyncEngine, tmp_path: Path
) -> None:
    port = free_port()  # both programs are configured with the same port
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    workers = [
        worker_process(
            settings, module, log=log, SHOP_WORKER_METRICS_PORT=str(port),
            **metrics_environment(tmp_path / f"metrics-{n}"),
        )
        for n, log in enumerate(logs)
    ]  # fmt: skip
    events = [stocked() for _ in range(20)]
    try:
        await publish(engine, *events)
        await eventually(lambda: all_applied_once(engine, events), 60, "20 events, 2 programs")

        async def both_served() -> bool:
            return all(_metrics_url(log) is not None for log in logs)

        await eventually(both_served, 30, "both programs' metrics endpoints")
        urls = [_metrics_url(log) or "" for log in logs]
        subscriber = f"{module.name}.RecordEffect"

        async def all_counted() -> bool:
            async with httpx.AsyncClient(timeout=5) as client:
                scraped = [(await client.get(url)).text for url in urls]
            return sum(_handled(text, subscriber) for text in scraped) == len(events)

        await eventually(all_counted, 30, "every handled event counted once, across both")
    finally:
        for worker in workers:
            stop(worker)
    assert len(set(urls)) == 2, urls
    ports = {int(url.removeprefix("http://127.0.0.1:").split("/", 1)[0]) for url in urls}
    assert port in ports
