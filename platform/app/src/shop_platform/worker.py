"""The one Dramatiq worker program: a Redis broker, asyncio actors, stores opened per process.

Run by `shop worker` as ``dramatiq shop_platform.worker:setup``; Dramatiq calls :func:`setup`
in every worker process before it imports any actor.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any

import dramatiq
import punq
from dramatiq.asyncio import get_event_loop_thread
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO

from shop_kernel.log import configure_logging, get_logger
from shop_kernel.redis_client import redis_url
from shop_kernel.settings import Settings
from shop_platform.container import build_container
from shop_platform.resources import open_resources

log = get_logger(__name__)


class WorkerResources(dramatiq.Middleware):
    """Opens the stores on the worker's event loop once it runs, closes them on shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.container: punq.Container | None = None
        self._stop: asyncio.Event | None = None
        self._running: Future[None] | None = None
        self._ready: Future[None] | None = None

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop_thread = get_event_loop_thread()
        if loop_thread is None:  # pragma: no cover - AsyncIO middleware is always added first
            raise RuntimeError("the AsyncIO middleware must come before WorkerResources")
        ready: Future[None] = Future()
        self._ready = ready
        self._running = asyncio.run_coroutine_threadsafe(self._hold(ready), loop_thread.loop)
        ready.result(timeout=60)
        log.info("worker stores open")

    def before_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        loop_thread = get_event_loop_thread()
        if self._stop is not None and loop_thread is not None:
            loop_thread.loop.call_soon_threadsafe(self._stop.set)
        if self._running is not None:
            self._running.result(timeout=30)
        log.info("worker stores closed")

    async def _hold(self, ready: Future[None]) -> None:
        self._stop = asyncio.Event()
        try:
            async with open_resources(self.settings, role="worker") as resources:
                self.container = build_container(self.settings, resources)
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise


def build_broker(settings: Settings) -> RedisBroker:
    broker = RedisBroker(url=redis_url(settings), namespace="shop")
    broker.add_middleware(AsyncIO())
    broker.add_middleware(WorkerResources(settings))
    return broker


def setup(*_: Any) -> None:
    """Dramatiq's entry point: make the process's broker from the environment's settings."""
    settings = Settings.from_env()
    configure_logging(settings, process="worker")
    dramatiq.set_broker(build_broker(settings))
