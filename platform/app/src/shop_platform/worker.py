"""The one Dramatiq worker program: every context's subscribers, and the outbox relay.

Run by `shop worker` as ``dramatiq shop_platform.worker:setup``; Dramatiq calls :func:`setup`
in every worker process before it consumes anything. Each process opens its own stores on
its event loop and runs a relay beside the actors (relays share the outbox safely).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import dramatiq
import punq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker

from shop_kernel import tracing
from shop_kernel.di import instantiated
from shop_kernel.log import configure_logging, get_logger
from shop_kernel.messaging.registry import stay_registered
from shop_kernel.messaging.retention import RETENTION
from shop_kernel.modules import ContextModule
from shop_kernel.schedules import Scheduled, run_schedules
from shop_kernel.settings import Settings
from shop_platform.backbone import Backbone
from shop_platform.container import build_container
from shop_platform.contexts import CONTEXTS, settings_from_env
from shop_platform.memory import keep_few_malloc_arenas
from shop_platform.resources import open_resources
from shop_platform.worker_metrics import METRICS_DIR

log = get_logger(__name__)

# Opening the stores makes clients (no store needs to answer yet); closing waits for the
# pools. The relay finishes the batch in hand when asked to stop.
STORES_OPEN_TIMEOUT_S = 60
STORES_CLOSE_TIMEOUT_S = 30
BACKGROUND_STOP_TIMEOUT_S = 15


class WorkerResources(dramatiq.Middleware):
    """The worker's stores, open for exactly as long as any message may need them.

    They open before the worker starts consuming (Dramatiq starts its consumers only after
    ``before_worker_boot``), so no message is taken by a process that cannot work on it
    yet. On shutdown the relay stops first (no new events are sent from here), and the
    stores close only after Dramatiq has joined every worker thread, so a message in hand
    finishes with them.
    """

    def __init__(
        self,
        settings: Settings,
        backbone: Backbone,
        modules: Sequence[ContextModule],
        *,
        background: bool,
    ) -> None:
        self.settings = settings
        self.backbone = backbone
        self.modules = modules
        self.background = background
        self.container: punq.Container | None = None
        self._stop_background: asyncio.Event | None = None
        self._close: asyncio.Event | None = None
        self._background_done: Future[None] = Future()
        self._running: Future[None] | None = None

    def live_container(self) -> punq.Container:
        if self.container is None:  # pragma: no cover - consumers start after the stores open
            raise RuntimeError("the worker's stores are not open yet")
        return self.container

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is None:  # pragma: no cover - the broker always has AsyncIO first
            raise RuntimeError("the AsyncIO middleware must come before WorkerResources")
        if not isinstance(broker, RedisBroker):  # pragma: no cover - see create_broker
            raise TypeError("the worker needs the Redis broker")
        ready: Future[None] = Future()
        self._running = asyncio.run_coroutine_threadsafe(
            self._hold(ready, broker), loop_thread.loop
        )
        ready.result(timeout=STORES_OPEN_TIMEOUT_S)
        log.info(
            "worker stores open",
            contexts=[module.name for module in self.modules],
            background=self.background,
            queues=self.backbone.queues,
        )

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Stop what this process does besides messages (the relay); the stores stay open."""
        loop_thread = get_event_loop_thread()
        if self._stop_background is not None and loop_thread is not None:
            loop_thread.loop.call_soon_threadsafe(self._stop_background.set)
            with contextlib.suppress(TimeoutError):
                self._background_done.result(timeout=BACKGROUND_STOP_TIMEOUT_S)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Every worker thread has finished its message: now the stores may close."""
        loop_thread = get_event_loop_thread()
        if self._close is not None and loop_thread is not None:
            loop_thread.loop.call_soon_threadsafe(self._close.set)
        if self._running is not None:
            self._running.result(timeout=STORES_CLOSE_TIMEOUT_S)
        tracing.flush()  # the spans of the last messages leave before the process does
        log.info("worker stores closed")

    def _schedules(self, container: punq.Container) -> list[Scheduled]:
        """The kernel's retention and every context's scheduled jobs, built once."""
        schedules = [RETENTION, *(s for module in self.modules for s in module.schedules)]
        return [
            Scheduled(s, instantiated(container, s.job), s.interval(self.settings))
            for s in schedules
        ]

    async def _hold(self, ready: Future[None], broker: RedisBroker) -> None:
        stop = self._stop_background = asyncio.Event()
        close = self._close = asyncio.Event()
        leaving = asyncio.Event()  # the registry hears of this process until the stores close
        try:
            async with open_resources(self.settings, role="worker") as resources:
                container = self.container = build_container(self.settings, resources, self.modules)
                registration = self.backbone.registration(
                    self.settings, resources.engine, role="worker"
                )
                registered = asyncio.create_task(stay_registered(registration, leaving))
                background = []
                if self.background:
                    relay = self.backbone.relay(self.settings, resources, broker)
                    schedules = self._schedules(container)
                    background = [
                        asyncio.create_task(relay.run(stop)),
                        asyncio.create_task(run_schedules(resources.engine, schedules, stop)),
                    ]
                ready.set_result(None)
                await stop.wait()
                await asyncio.gather(*background)
                self._background_done.set_result(None)
                await close.wait()
                leaving.set()
                await registered
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            if not self._background_done.done():
                self._background_done.set_exception(exc)
            raise


def build_broker(
    settings: Settings,
    modules: Sequence[ContextModule] = CONTEXTS,
    *,
    background: bool = True,
    metrics: bool = False,
) -> RedisBroker:
    """The worker's broker; with ``background`` each process also runs the outbox relay and
    the scheduled jobs (the kernel's retention and the contexts' schedules)."""
    backbone = Backbone.of(modules)
    broker = backbone.broker(settings, metrics=metrics)
    resources = WorkerResources(settings, backbone, modules, background=background)
    broker.add_middleware(resources)
    backbone.declare_actors(broker, resources.live_container)
    return broker


def setup(*_: Any) -> None:
    """Dramatiq's entry point: make the process's broker from the environment's settings."""
    keep_few_malloc_arenas()  # in each worker process, before its threads start
    settings = settings_from_env()
    configure_logging(settings, process="worker")
    tracing.configure_tracing(settings, role="worker")  # before the broker: it asks
    metrics = METRICS_DIR in os.environ  # set by `shop worker` before any process starts
    dramatiq.set_broker(build_broker(settings, metrics=metrics))


def metrics_environment(directory: Path) -> dict[str, str]:
    """Where the worker processes of one program keep their metrics (served by its
    exposition process, see :mod:`shop_platform.worker_metrics`)."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise ValueError(
            f"{directory}: a previous run's counters would be added in; use a new folder"
        )
    return {
        METRICS_DIR: str(directory),
        "dramatiq_prom_db": str(directory),  # Dramatiq's name for the same folder
    }
