"""A small context used only by the backbone's tests: one event, a handler and a projector."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, cast

import pytest
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_devkit.app_plugin import patience
from shop_kernel.driver import Compiled
from shop_kernel.messaging.events import IntegrationEvent
from shop_kernel.messaging.projection import ViewWrite, apply_newest
from shop_kernel.messaging.subscriptions import (
    Subscription,
    TransactionKind,
    project,
    subscribe,
)
from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings
from shop_kernel.unit_of_work import UnitOfWork
from shop_kernel.views import ReadView
from shop_platform.contexts import CONTEXTS, settings_from_env
from shop_platform.resources import Resources
from shop_platform.worker import build_broker

EFFECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS public.backbone_effects "
    "(subscriber text NOT NULL, event_id uuid NOT NULL, shelf text NOT NULL, "
    "applied_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE IF NOT EXISTS public.backbone_shelf_state "
    "(shelf text PRIMARY KEY, quantity int NOT NULL, version int NOT NULL)",
)


class ShelfStocked(IntegrationEvent, frozen=True, tag="test.ShelfStocked.v1"):
    shelf: str
    quantity: int
    sleep: float = 0.0  # the handler takes this long
    view_sleep: float = 0.0  # the projector takes this long (after marking that it started)


class ShelfStockedV2(IntegrationEvent, frozen=True, tag="test.ShelfStocked.v2"):
    """A newer version of the event, which only the newer release publishes and reads."""

    shelf: str
    quantity: int
    unit: str = "pieces"


RECORD_EFFECT = text(
    "INSERT INTO public.backbone_effects (subscriber, event_id, shelf) "
    "VALUES (:subscriber, :event_id, :shelf)"
)
# The effect and the write store's current state of the shelf (what a rebuild reads), in one
# statement compiled once, as a context's hot handlers write (shop_kernel.driver).
RECORD_EFFECT_AND_STATE = Compiled(
    text(
        "WITH effect AS (INSERT INTO public.backbone_effects (subscriber, event_id, shelf) "
        "VALUES ('RecordEffect', :event_id, :shelf)) "
        "INSERT INTO public.backbone_shelf_state VALUES (:shelf, :quantity, :version) "
        "ON CONFLICT (shelf) DO UPDATE SET quantity = excluded.quantity, "
        "version = excluded.version WHERE backbone_shelf_state.version < excluded.version"
    )
)


class RecordEffect:
    """Writes one row per handling, so a double effect shows as two rows."""

    jammed: ClassVar[set[str]] = set()

    async def __call__(self, event: ShelfStocked | ShelfStockedV2, uow: UnitOfWork) -> None:
        if event.shelf in self.jammed:
            raise RuntimeError(f"shelf {event.shelf} is jammed")
        await RECORD_EFFECT_AND_STATE.run(
            await uow.driver(), event_id=event.event_id, shelf=event.shelf,
            quantity=event.quantity, version=event.aggregate_version,
        )  # fmt: skip
        if isinstance(event, ShelfStocked) and event.sleep:
            await asyncio.sleep(event.sleep)


class AuditShelf:
    """A subscriber only the newer release has."""

    async def __call__(self, event: ShelfStocked | ShelfStockedV2, uow: UnitOfWork) -> None:
        await uow.connection.execute(
            RECORD_EFFECT,
            {"subscriber": "AuditShelf", "event_id": event.event_id, "shelf": event.shelf},
        )


# Projections that take a while note here when they begin.
STARTED = "backbone_projections_started"


class ShelfView:
    def __init__(self, resources: Resources, settings: Settings) -> None:
        database = resources.mongo[settings.mongodb_database]
        self.collection: Any = database["backbone_shelves"]
        self.started: Any = database[STARTED]

    async def __call__(self, events: Sequence[ShelfStocked]) -> None:
        for event in events:
            if event.view_sleep:
                await self.started.insert_one({"_id": str(event.event_id)})
                await asyncio.sleep(event.view_sleep)
        now = datetime.now(UTC)
        await apply_newest(
            self.collection,
            [
                ViewWrite(event.aggregate_id, event.aggregate_version,
                          {"quantity": event.quantity, "shelf": event.shelf, "projected_at": now})
                for event in events
            ],
        )  # fmt: skip


class ShelfStates:
    """The shelves as the write store knows them, shaped like ShelfView's documents."""

    def __init__(self, resources: Resources) -> None:
        self.engine = resources.engine

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            result = await conn.execute(text("SELECT count(*) FROM public.backbone_shelf_state"))
            return int(result.scalar_one())

    async def documents(self, keys: Sequence[str] | None = None) -> AsyncIterator[dict[str, Any]]:
        query = "SELECT shelf, quantity, version FROM public.backbone_shelf_state"
        async with self.engine.connect() as conn:
            if keys is None:
                rows = await conn.stream(text(query))
            else:
                rows = await conn.stream(text(f"{query} WHERE shelf = ANY(:keys)"), {"keys": keys})
            async for shelf, quantity, version in rows:
                yield {"_id": shelf, "shelf": shelf, "quantity": quantity, "version": version}


def shelf_module(
    name: str,
    *,
    with_view: bool = True,
    newer: bool = False,
    transaction: TransactionKind = "delivery",
) -> ContextModule:
    """The test context; ``newer`` is its next release: a new version of the event, read by
    the same handler, and a new subscriber of both versions. ``transaction`` is how its
    handler of ShelfStocked takes a batch (its rows are its own: shelves one event each)."""
    users = next(context for context in CONTEXTS if context.name == "users")
    subscriptions: list[Subscription[Any]] = [
        subscribe(ShelfStocked, RecordEffect, transaction=transaction)
    ]
    if with_view:
        subscriptions.append(project(ShelfStocked, ShelfView))
    if newer:
        subscriptions += [
            subscribe(ShelfStockedV2, RecordEffect),
            subscribe(ShelfStocked, AuditShelf),
            subscribe(ShelfStockedV2, AuditShelf),
        ]
    return ContextModule(
        name=name,
        migrations=MigrationTarget(
            name, users.migrations.metadata, users.migrations.script_location
        ),
        events=[ShelfStocked, ShelfStockedV2] if newer else [ShelfStocked],
        subscriptions=subscriptions,
        views=[ReadView("backbone_shelves", "backbone_shelves", ShelfStates)],
    )


def setup() -> None:
    """Entry point for a worker subprocess: ``dramatiq backbone_support:setup``."""
    import os  # noqa: PLC0415

    import dramatiq  # noqa: PLC0415

    from shop_kernel.log import configure_logging  # noqa: PLC0415

    settings = settings_from_env()
    configure_logging(settings, process="worker")
    with_view = os.environ.get("BACKBONE_TEST_VIEW", "1") == "1"
    newer = os.environ.get("BACKBONE_TEST_RELEASE") == "newer"
    transaction = os.environ.get("BACKBONE_TEST_TRANSACTION", "delivery")
    assert transaction in {"delivery", "batch"}
    module = shelf_module(
        os.environ["BACKBONE_TEST_CONTEXT"], with_view=with_view, newer=newer,
        transaction="batch" if transaction == "batch" else "delivery",
    )  # fmt: skip
    metrics = "PROMETHEUS_MULTIPROC_DIR" in os.environ
    dramatiq.set_broker(build_broker(settings, [module], metrics=metrics))


# Helpers of the tests that drive this context through real worker programs.

HERE = Path(__file__).parent


def worker_process(
    settings: Settings, module: ContextModule, *, log: Path | None = None, **extra_env: str
) -> subprocess.Popen[bytes]:
    """A worker program of ``module`` (its own process group); its output goes to ``log``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update(
        SHOP_DATABASE_URL=settings.database_url or "",
        SHOP_REDIS_URL=settings.redis_url or "",
        SHOP_MONGODB_URL=settings.mongodb_url or "",
        SHOP_MONGODB_DATABASE=settings.mongodb_database,
        SHOP_EVENT_MAX_RETRIES="20",
        SHOP_EVENT_MIN_BACKOFF_MS="50",
        SHOP_LOG_LEVEL="INFO" if log is not None else "WARNING",
        BACKBONE_TEST_CONTEXT=module.name,
        dramatiq_worker_timeout="100",
        PYTHONPATH=str(HERE),
    )
    env.update(extra_env)
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "backbone_support:setup", "--processes", "1",
             "--threads", "4"],
            env=env, stdout=out, stderr=out,
            start_new_session=True,  # its own process group: a kill takes the forked worker too
        )  # fmt: skip
    finally:
        if not isinstance(out, int):
            out.close()


def kill(worker: subprocess.Popen[bytes]) -> None:
    """What a crash or an OOM kill does to a worker container: every process dies at once."""
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()


def stop(worker: subprocess.Popen[bytes]) -> int:
    """SIGTERM (the master stops its worker processes in order); its exit status."""
    status = worker.poll()
    if status is None:
        worker.send_signal(signal.SIGTERM)
        try:
            status = worker.wait(30)
        except subprocess.TimeoutExpired:
            kill(worker)
            status = -9
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)  # nothing of it may outlive the test
    return status


async def publish(engine: AsyncEngine, *events: IntegrationEvent, commit: bool = True) -> None:
    async with UnitOfWork(engine) as uow:
        for event in events:
            uow.publish(event)
        if commit:
            await uow.commit()


def stocked(aggregate: str | None = None, version: int = 1, **fields: Any) -> ShelfStocked:
    shelf = aggregate or f"s-{uuid.uuid4().hex[:8]}"
    return ShelfStocked(
        aggregate_id=shelf,
        aggregate_version=version,
        shelf=shelf,
        quantity=fields.pop("quantity", version * 10),
        **fields,
    )


async def effects(
    engine: AsyncEngine, events: Sequence[IntegrationEvent], subscriber: str = "RecordEffect"
) -> dict[uuid.UUID, int]:
    """How many times ``subscriber``'s effect happened, per event."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT event_id, count(*) FROM public.backbone_effects "
                "WHERE event_id = ANY(:ids) AND subscriber = :subscriber GROUP BY event_id"
            ),
            {"ids": [e.event_id for e in events], "subscriber": subscriber},
        )
        counted = {row[0]: int(row[1]) for row in rows}
    return {e.event_id: counted.get(e.event_id, 0) for e in events}


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> float:
    """Poll ``check`` until it holds; return how long it took (``SHOP_TEST_PATIENCE`` stretches
    the time allowed)."""
    timeout *= patience()
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await check():
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    pytest.fail(f"not within {timeout:.0f} s: {what}")


async def all_applied_once(
    engine: AsyncEngine, events: Sequence[IntegrationEvent], subscriber: str = "RecordEffect"
) -> bool:
    return set((await effects(engine, events, subscriber)).values()) == {1}


def log_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a worker program's log (Dramatiq's own lines as they are)."""
    lines: list[dict[str, Any]] = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            parsed = json.loads(line)
            if isinstance(parsed, dict):
                lines.append(cast("dict[str, Any]", parsed))
    return lines


@contextmanager
def in_process_worker(
    settings: Settings,
    module: ContextModule,
    *,
    background: bool = True,
    queues: Sequence[str] | None = None,
) -> Iterator[RedisBroker]:
    """A Dramatiq worker of ``module`` in the test's process, on ``queues`` (default all)."""
    broker = build_broker(settings, [module], background=background)
    broker.emit_after("process_boot")
    chosen = set(queues) if queues else None
    worker = Worker(broker, queues=chosen, worker_threads=4, worker_timeout=50)
    worker.start()
    try:
        yield broker
    finally:
        worker.stop()
        broker.close()
