"""The event backbone end to end on real PostgreSQL, Redis and a Mongo-wire server.

Every committed event reaches every subscriber exactly once in effect, whatever the timing of
commits, the number of relays and workers, or how often a worker is killed.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import msgspec
from backbone_support import (
    RecordEffect,
    ShelfStocked,
    all_applied_once,
    effects,
    eventually,
    in_process_worker,
    kill,
    publish,
    stocked,
    stop,
    worker_process,
)
from prometheus_client import REGISTRY
from pymongo import MongoClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_devkit.embedded import free_port
from shop_kernel.messaging.broker import NAMESPACE
from shop_kernel.messaging.dead_letters import dead_letters, replay
from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings
from shop_kernel.unit_of_work import UnitOfWork
from shop_kernel.views import ReadView
from shop_kernel.writes import run_write
from shop_platform.backbone import Backbone
from shop_platform.projections import rebuild_views, views_of
from shop_platform.worker import metrics_environment

HERE = Path(__file__).parent


async def test_only_committed_events_are_delivered(
    settings: Settings, module: ContextModule, engine: AsyncEngine,
    views: Any,
) -> None:  # fmt: skip
    rolled_back, committed = stocked(), stocked()
    with in_process_worker(settings, module):
        await publish(engine, rolled_back, commit=False)
        await publish(engine, committed)
        await eventually(lambda: all_applied_once(engine, [committed]), 20, "the committed event")
        await eventually(
            lambda: _has_view(views, committed.aggregate_id), 20, "the committed event's view"
        )
    assert (await effects(engine, [rolled_back]))[rolled_back.event_id] == 0
    async with engine.connect() as conn:
        stored = await conn.execute(
            text("SELECT count(*) FROM messaging.outbox WHERE event_id = :e"),
            {"e": rolled_back.event_id},
        )
        assert stored.scalar_one() == 0
    assert await views.find_one({"_id": rolled_back.aggregate_id}) is None


async def _has_view(views: Any, key: str) -> bool:
    return await views.find_one({"_id": key}) is not None


async def test_late_commits_are_never_skipped(
    settings: Settings, module: ContextModule, engine: AsyncEngine,
    views: Any,
) -> None:  # fmt: skip
    events = [stocked() for _ in range(50)]

    async def slow_writer(event: ShelfStocked) -> None:
        async with UnitOfWork(engine) as uow:
            # The row is in the outbox (its id taken) while its transaction stays open.
            await run_write(await uow.driver(), None, events=[event])
            await asyncio.sleep(random.uniform(0, 0.5))
            await uow.commit()

    with in_process_worker(settings, module):
        await asyncio.gather(*(slow_writer(e) for e in events))
        await eventually(lambda: all_applied_once(engine, events), 30, "all 50 late commits")
        await eventually(lambda: _count_views(views, events, 50), 30, "all 50 views")
    assert set((await effects(engine, events)).values()) == {1}


async def _count_views(views: Any, events: list[ShelfStocked], expected: int) -> bool:
    count = await views.count_documents({"_id": {"$in": [e.aggregate_id for e in events]}})
    return bool(count == expected)


async def test_two_relays_and_two_workers_deliver_each_event_once(
    settings: Settings, module: ContextModule, engine: AsyncEngine,
) -> None:  # fmt: skip
    events = [stocked() for _ in range(200)]
    workers = [worker_process(settings, module) for _ in range(2)]
    try:
        for start in range(0, len(events), 20):
            await publish(engine, *events[start : start + 20])
        await eventually(lambda: all_applied_once(engine, events), 60, "200 events, 2 workers")
    finally:
        for worker in workers:
            stop(worker)
    async with engine.connect() as conn:
        inbox = await conn.execute(
            text("SELECT count(*) FROM messaging.inbox WHERE subscriber = :s"),
            {"s": f"{module.name}.RecordEffect"},
        )
        assert inbox.scalar_one() == len(events)


async def test_a_worker_killed_again_and_again_loses_and_doubles_nothing(
    settings: Settings, module: ContextModule, engine: AsyncEngine,
    views: Any,
) -> None:  # fmt: skip
    aggregates = [f"s-{uuid.uuid4().hex[:8]}" for _ in range(100)]
    events = [stocked(a, version) for version in range(1, 11) for a in aggregates]
    worker = worker_process(settings, module)
    kills = 0
    try:
        for start in range(0, len(events), 100):
            await publish(engine, *events[start : start + 100])
            await asyncio.sleep(0.3)
            if start % 200 == 0:
                kill(worker)
                kills += 1
                worker = worker_process(settings, module)
        await eventually(lambda: all_applied_once(engine, events), 90, "1,000 events after kills")

        async def views_at_latest() -> bool:
            latest = await views.count_documents({"_id": {"$in": aggregates}, "version": 10})
            return bool(latest == len(aggregates))

        await eventually(views_at_latest, 90, "every view at version 10")
    finally:
        stop(worker)
    assert kills >= 5
    async for view in views.find({"_id": {"$in": aggregates}}):
        assert view["quantity"] == 100
    async with engine.connect() as conn:
        inbox = await conn.execute(
            text("SELECT count(*) FROM messaging.inbox WHERE event_id = ANY(:ids)"),
            {"ids": [e.event_id for e in events]},
        )
        assert inbox.scalar_one() == len(events)


async def test_a_killed_workers_message_is_redelivered_within_30_seconds(
    settings: Settings, module: ContextModule, engine: AsyncEngine,
) -> None:  # fmt: skip
    event = stocked(sleep=4.0)
    worker = worker_process(settings, module)
    try:
        await publish(engine, event)
        await asyncio.sleep(2.5)  # relayed and being handled: the handler sleeps 4 s
        kill(worker)
        killed_at = time.monotonic()
        worker = worker_process(settings, module)
        await eventually(lambda: all_applied_once(engine, [event]), 40, "redelivery")
        assert time.monotonic() - killed_at < 30
    finally:
        stop(worker)


async def test_the_worker_serves_per_subscriber_and_relay_metrics(
    settings: Settings, module: ContextModule, engine: AsyncEngine,
    tmp_path: Path,
) -> None:  # fmt: skip
    port = free_port()
    env = {**metrics_environment(tmp_path / "m"), "SHOP_WORKER_METRICS_PORT": str(port)}
    events = [stocked() for _ in range(5)]
    worker = worker_process(settings, module, **env)
    try:
        await publish(engine, *events)
        await eventually(lambda: all_applied_once(engine, events), 30, "5 events")

        async def scraped() -> bool:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.HTTPError:
                return False
            return f'actor_name="{module.name}.ShelfView.batch"' in text and "lag" in text

        await eventually(scraped, 20, "the worker's metrics endpoint")
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    finally:
        stop(worker)
    # Messages per actor (the relay sends a subscriber's events in batches: 1 to 5 of them) ...
    batches = re.search(
        "dramatiq_messages_total"
        rf'{{actor_name="{module.name}.RecordEffect.batch",queue_name="{module.name}"}} (\d+)',
        metrics,
    )
    assert batches is not None
    assert 1 <= float(batches[1]) <= 5
    # ... and events per subscriber.
    for kind, subscriber in [("handler", "RecordEffect"), ("projector", "ShelfView")]:
        lag = (
            "shop_event_delivery_lag_seconds_count"
            f'{{kind="{kind}",subscriber="{module.name}.{subscriber}"}} 5.0'
        )
        assert lag in metrics
    assert "shop_relay_batch_events_count" in metrics


async def test_a_rebuilt_view_equals_the_incrementally_projected_one(
    settings: Settings, module: ContextModule, engine: AsyncEngine,
    views: Any,
) -> None:  # fmt: skip
    shelves = [f"s-{uuid.uuid4().hex[:8]}" for _ in range(30)]
    events = [
        stocked(shelf, version, quantity=random.randint(0, 99))
        for version in (1, 2, 3)
        for shelf in shelves
    ]
    with in_process_worker(settings, module):
        await publish(engine, *events)
        await eventually(lambda: all_applied_once(engine, events), 30, "90 events")

        async def projected() -> bool:
            done = await views.count_documents({"_id": {"$in": shelves}, "version": 3})
            return bool(done == len(shelves))

        await eventually(projected, 30, "the incremental view")
    # When the projector ran is not state the write store knows; everything else must match.
    shape = {"projected_at": False}
    incremental = [d async for d in views.find({"_id": {"$in": shelves}}, shape).sort("_id")]
    await views.delete_many({"_id": {"$in": shelves[:5]}})  # a view that lost documents
    await views.update_many({"_id": {"$in": shelves[5:10]}}, {"$set": {"quantity": -1}})

    served_meanwhile: list[int] = []
    reader: MongoClient[dict[str, Any]] = MongoClient(settings.mongodb_url)
    live = reader[settings.mongodb_database]["backbone_shelves"]

    def progress(view: ReadView, total: int) -> Callable[[int], None]:
        assert view.name == "backbone_shelves"
        assert total >= len(shelves)
        return lambda _done: served_meanwhile.append(
            live.count_documents({"_id": {"$in": shelves}})
        )

    try:
        await rebuild_views(settings, [module], views_of([module]), progress)
    finally:
        reader.close()
    rebuilt = [d async for d in views.find({"_id": {"$in": shelves}}, shape).sort("_id")]
    assert rebuilt == incremental
    assert served_meanwhile
    # Readers see each document as it was or as rebuilt: the lost ones come back, none goes.
    assert served_meanwhile == sorted(served_meanwhile)
    assert len(shelves) - 5 <= served_meanwhile[0] <= served_meanwhile[-1] == len(shelves)


async def test_a_failing_handler_ends_in_the_dead_letters_and_a_replay_applies_it_once(
    settings: Settings, module: ContextModule, engine: AsyncEngine,
) -> None:  # fmt: skip
    event = stocked()
    RecordEffect.jammed.add(event.shelf)
    queues = Backbone.of([module]).queues
    try:
        with in_process_worker(settings, module) as broker:
            await publish(engine, event)

            async def dead_lettered() -> bool:
                return len(dead_letters(broker, queues)) == 1

            await eventually(dead_lettered, 30, "the dead letter")
            [letter] = dead_letters(broker, queues)
            assert letter.subscriber == f"{module.name}.RecordEffect"
            assert letter.event_type == "test.ShelfStocked.v1"
            assert letter.attempts == 3
            assert "jammed" in letter.error
            assert (await effects(engine, [event]))[event.event_id] == 0

            RecordEffect.jammed.discard(event.shelf)
            replay(broker, letter)
            await eventually(lambda: all_applied_once(engine, [event]), 20, "the replay")
            assert dead_letters(broker, queues) == []
    finally:
        RecordEffect.jammed.discard(event.shelf)


async def test_a_batch_with_a_failing_event_goes_on_one_by_one_and_only_that_one_dead_letters(
    settings: Settings, module: ContextModule, engine: AsyncEngine,
) -> None:  # fmt: skip
    events = [stocked() for _ in range(5)]
    jammed = events[2]
    RecordEffect.jammed.add(jammed.shelf)
    queues = Backbone.of([module]).queues
    try:
        await publish(engine, *events)  # one commit: the relay sends them in one batch
        with in_process_worker(settings, module) as broker:

            async def dead_lettered() -> bool:
                return len(dead_letters(broker, queues)) == 1

            await eventually(dead_lettered, 30, "the jammed event's dead letter")
            others = [event for event in events if event is not jammed]
            await eventually(lambda: all_applied_once(engine, others), 20, "the other four")
            [letter] = dead_letters(broker, queues)
            assert letter.subscriber == f"{module.name}.RecordEffect"
            [payload] = letter.message.args  # alone
            assert msgspec.json.decode(payload)["event_id"] == str(jammed.event_id)
            assert letter.event_type == "test.ShelfStocked.v1"
            assert (await effects(engine, [jammed]))[jammed.event_id] == 0
    finally:
        RecordEffect.jammed.discard(jammed.shelf)


async def test_a_payload_that_cannot_be_decoded_is_dead_lettered_at_once_with_the_reason(
    settings: Settings, module: ContextModule,
) -> None:  # fmt: skip
    backbone = Backbone.of([module])
    route = next(r for r in backbone.routes if r.subscription.kind == "handler")
    with in_process_worker(settings, module, background=False) as broker:
        broker.enqueue(
            dramatiq.Message(
                queue_name=route.queue_name,
                actor_name=route.actor_name,
                args=('{"type": "test.NoSuchThing.v1"}',),  # not what its type says it is
                kwargs={},
                options={"event_type": route.event_tag},
            )
        )

        async def dead_lettered() -> bool:
            return len(dead_letters(broker, backbone.queues)) == 1

        await eventually(dead_lettered, 20, "the dead letter")
        [letter] = dead_letters(broker, backbone.queues)
    assert letter.attempts == 1
    assert "EventDecodeError" in letter.error
    assert "test.NoSuchThing.v1" in letter.error


async def test_a_message_this_worker_does_not_handle_is_handed_back_then_dead_lettered_in_time(
    settings: Settings, module: ContextModule,
) -> None:  # fmt: skip
    """A newer release's subscriber, or a newer event version, on this worker's queue."""
    settings = settings.with_overrides(event_outage_max_age=3.0)
    backbone = Backbone.of([module])
    queue = next(r.queue_name for r in backbone.routes if r.subscription.kind == "handler")
    strangers = [
        (f"{module.name}.RecordEffect", "test.ShelfStocked.v9"),  # a version it cannot read
        (f"{module.name}.Newcomer", "test.ShelfStocked.v1"),  # a subscriber it does not have
    ]
    before = sum(_deferrals(actor) for actor, _ in strangers)
    with in_process_worker(settings, module, background=False) as broker:
        for actor, event_type in strangers:
            broker.enqueue(
                dramatiq.Message(
                    queue_name=queue, actor_name=actor, args=('{"type": "x"}',), kwargs={},
                    options={"event_type": event_type},
                )
            )  # fmt: skip

        async def handed_back() -> bool:
            return sum(_deferrals(actor) for actor, _ in strangers) - before >= 4

        await eventually(handed_back, 20, "both handed back, again and again")
        assert dead_letters(broker, backbone.queues) == []  # not failed: waiting for its worker

        async def given_up() -> bool:
            return len(dead_letters(broker, backbone.queues)) == 2

        await eventually(given_up, 30, "both dead-lettered once no worker took them in time")
        letters = dead_letters(broker, backbone.queues)
    assert {letter.subscriber for letter in letters} == {actor for actor, _ in strangers}
    assert all("no running worker handles" in letter.error for letter in letters)


def _deferrals(subscriber: str) -> float:
    value = REGISTRY.get_sample_value("shop_event_deferrals_total", {"subscriber": subscriber})
    return value or 0.0


async def test_a_program_serving_the_projections_leaves_the_handlers_queue_to_another(
    settings: Settings, module: ContextModule, engine: AsyncEngine, views: Any,
) -> None:  # fmt: skip
    """`shop worker --serve projections` and `--serve handlers` split the queues: the one
    projects the event and leaves its handler's message queued, the other handles it."""
    backbone = Backbone.of([module])
    event = stocked()
    with in_process_worker(
        settings, module, queues=backbone.queues_serving("projections")
    ) as broker:
        await publish(engine, event)
        await eventually(lambda: _has_view(views, event.aggregate_id), 30, "the event's view")
        # Relayed with the projection's message, in the same pipeline, and left alone.
        [handlers] = backbone.queues_serving("handlers")
        assert broker.client.llen(f"{NAMESPACE}:{handlers}") == 1
        assert (await effects(engine, [event]))[event.event_id] == 0
    with in_process_worker(settings, module, queues=backbone.queues_serving("handlers")):
        await eventually(lambda: all_applied_once(engine, [event]), 30, "the handler's effect")
