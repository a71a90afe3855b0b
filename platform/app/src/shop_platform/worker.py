"""The one Dramatiq worker program: every context's subscribers, and the outbox relay.

Run by `shop worker` as ``dramatiq shop_platform.worker:setup``; Dramatiq calls :func:`setup`
in every worker process before it consumes anything. Each process opens its own stores on
its event loop and runs a relay beside the actors (relays share the outbox safely).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import dramatiq
import punq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker

from shop_kernel.log import configure_logging, get_logger
from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings
from shop_platform.backbone import Backbone
from shop_platform.container import build_container
from shop_platform.contexts import CONTEXTS
from shop_platform.resources import open_resources

log = get_logger(__name__)

METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class WorkerResources(dramatiq.Middleware):
    """Opens the stores on the worker's event loop once it runs, closes them on shutdown."""

    def __init__(
        self,
        settings: Settings,
        backbone: Backbone,
        modules: Sequence[ContextModule],
        *,
        relay: bool,
    ) -> None:
        self.settings = settings
        self.backbone = backbone
        self.modules = modules
        self.relay = relay
        self.container: punq.Container | None = None
        self._stop: asyncio.Event | None = None
        self._running: Future[None] | None = None

    def live_container(self) -> punq.Container:
        if self.container is None:
            raise RuntimeError("the worker's stores are not open yet")
        return self.container

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is None:  # pragma: no cover - the broker always has AsyncIO first
            raise RuntimeError("the AsyncIO middleware must come before WorkerResources")
        if not isinstance(broker, RedisBroker):  # pragma: no cover - see create_broker
            raise TypeError("the worker needs the Redis broker")
        ready: Future[None] = Future()
        self._running = asyncio.run_coroutine_threadsafe(
            self._hold(ready, broker), loop_thread.loop
        )
        ready.result(timeout=60)
        log.info(
            "worker stores open",
            contexts=[module.name for module in self.modules],
            relay=self.relay,
            queues=self.backbone.queues,
        )

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop_thread = get_event_loop_thread()
        if self._stop is not None and loop_thread is not None:
            loop_thread.loop.call_soon_threadsafe(self._stop.set)
        if self._running is not None:
            self._running.result(timeout=30)
        log.info("worker stores closed")

    async def _hold(self, ready: Future[None], broker: RedisBroker) -> None:
        stop = self._stop = asyncio.Event()
        try:
            async with open_resources(self.settings, role="worker") as resources:
                self.container = build_container(self.settings, resources, self.modules)
                relaying = (
                    asyncio.create_task(
                        self.backbone.relay(self.settings, resources, broker).run(stop)
                    )
                    if self.relay
                    else None
                )
                ready.set_result(None)
                await stop.wait()
                if relaying is not None:
                    await relaying
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise


def build_broker(
    settings: Settings,
    modules: Sequence[ContextModule] = CONTEXTS,
    *,
    relay: bool = True,
    metrics: bool = False,
) -> RedisBroker:
    backbone = Backbone.of(modules)
    broker = backbone.broker(settings, metrics=metrics)
    resources = WorkerResources(settings, backbone, modules, relay=relay)
    broker.add_middleware(resources)
    backbone.declare_actors(broker, resources.live_container)
    return broker


def setup(*_: Any) -> None:
    """Dramatiq's entry point: make the process's broker from the environment's settings."""
    settings = Settings.from_env()
    configure_logging(settings, process="worker")
    metrics = METRICS_DIR in os.environ  # set by `shop worker` before any process starts
    dramatiq.set_broker(build_broker(settings, metrics=metrics))


def metrics_environment(settings: Settings, directory: Path) -> dict[str, str]:
    """Where the worker processes keep their metrics, and where they are served."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        raise ValueError(
            f"{directory}: a previous run's counters would be added in; use a new folder"
        )
    return {
        METRICS_DIR: str(directory),
        "dramatiq_prom_db": str(directory),
        "dramatiq_prom_host": settings.worker_metrics_host,
        "dramatiq_prom_port": str(settings.worker_metrics_port),
    }
