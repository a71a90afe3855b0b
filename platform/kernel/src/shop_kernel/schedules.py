"""Work that runs on a clock in the worker: purges, deadlines. One runner at a time.

A context declares a :class:`Schedule` in its module (the kernel declares its own purges);
every worker process runs every schedule's loop, and a PostgreSQL advisory lock per schedule
lets exactly one of them do a round while the others skip it. So a schedule runs as long as
any worker runs, however many there are, and however busy their relays and subscribers are.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.log import get_logger
from shop_kernel.settings import Settings

log = get_logger(__name__)


class ScheduledJob(Protocol):
    async def __call__(self) -> object: ...


@dataclass(frozen=True)
class Schedule:
    name: str  # unique across the service: it names the advisory lock
    every: float | Callable[[Settings], float]  # seconds between rounds
    job: type[Any]  # built by the container; its instances are ScheduledJobs

    def interval(self, settings: Settings) -> float:
        return self.every(settings) if callable(self.every) else self.every

    @property
    def lock_key(self) -> int:
        return zlib.crc32(f"shop.schedule.{self.name}".encode())


@dataclass(frozen=True)
class Scheduled:
    schedule: Schedule
    job: ScheduledJob
    interval: float


_TRY_LOCK = text("SELECT pg_try_advisory_lock(:key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:key)")


async def run_once(engine: AsyncEngine, scheduled: Scheduled) -> bool:
    """One round of the job, unless another process is doing one; whether this one ran."""
    key = scheduled.schedule.lock_key
    async with engine.connect() as lock:
        if not (await lock.execute(_TRY_LOCK, {"key": key})).scalar_one():
            await lock.rollback()
            return False
        await lock.commit()  # the lock is the session's: no transaction stays open meanwhile
        try:
            await scheduled.job()
        finally:
            await lock.execute(_UNLOCK, {"key": key})
            await lock.commit()
    return True


async def run_schedules(
    engine: AsyncEngine, schedules: Sequence[Scheduled], stop: asyncio.Event
) -> None:
    """Run every schedule's loop until ``stop`` is set; a failing round is logged and retried
    at the next one."""
    await asyncio.gather(*(_loop(engine, scheduled, stop) for scheduled in schedules))


async def _loop(engine: AsyncEngine, scheduled: Scheduled, stop: asyncio.Event) -> None:
    # A random first delay spreads the rounds of processes that start together.
    delay = random.uniform(0, min(scheduled.interval, 5.0))  # noqa: S311 - not for secrets
    while not await _stopped_within(stop, delay):
        try:
            await run_once(engine, scheduled)
        except Exception:  # a store outage or a bug: say so, try again next round
            log.exception("scheduled job failed; next round as usual", job=scheduled.schedule.name)
        delay = scheduled.interval


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
