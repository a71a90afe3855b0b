"""An open-loop HTTP load generator: requests leave on a fixed schedule, whatever the server does.

Each request has a scheduled send time (start + i / rate) and its latency runs from that time,
not from when it actually left: a server that stalls makes the requests queued behind it late,
and their lateness counts (no coordinated omission). Sends the generator itself could not make
on time are counted as late; sends refused because ``max_in_flight`` requests were already
outstanding are counted as dropped. Latencies go into an HdrHistogram (microseconds, 3
significant digits).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from hdrh.histogram import HdrHistogram

# A send that leaves more than this after its scheduled time is "late" (the generator lagged).
LATE_S = 0.005
# Requests that take longer than this are errors (and still count as latency).
REQUEST_TIMEOUT_S = 10.0
# Largest latency the histogram holds: 60 s, in microseconds.
HISTOGRAM_MAX_US = 60_000_000


@dataclass(frozen=True)
class Request:
    """One HTTP request to make, and the statuses that count as success."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict[str, str])
    body: bytes | None = None
    ok: frozenset[int] = frozenset({200})


# What the generator starts at each scheduled time: send number i, scheduled at a monotonic
# time, records into the recorder. `plain` makes one from a function giving the i-th request;
# a scenario with several requests per arrival (a checkout) writes its own.
Flow = Callable[[int, float, aiohttp.ClientSession, "Recorder"], Awaitable[None]]


def plain(make: Callable[[int], Request]) -> Flow:
    """One request per arrival, its latency counted from the scheduled time."""

    async def flow(
        number: int, scheduled: float, session: aiohttp.ClientSession, recorder: Recorder
    ) -> None:
        ok, what, _ = await send(session, make(number))
        recorder.record(scheduled, ok, what)

    return flow


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, HISTOGRAM_MAX_US, 3)


@dataclass
class Recorder:
    """What one step observed."""

    latency: HdrHistogram = field(default_factory=new_histogram)
    completed: int = 0
    errors: int = 0
    error_samples: dict[str, int] = field(default_factory=dict[str, int])
    last_done: float = 0.0

    def record(self, started: float, ok: bool, what: str = "") -> None:
        now = time.monotonic()
        self.latency.record_value(max(1, round((now - started) * 1_000_000)))
        self.completed += 1
        self.last_done = max(self.last_done, now)
        if not ok:
            self.errors += 1
            if len(self.error_samples) < 10 or what in self.error_samples:
                self.error_samples[what] = self.error_samples.get(what, 0) + 1


async def send(session: aiohttp.ClientSession, request: Request) -> tuple[bool, str, bytes]:
    """Make one request: (succeeded, what went wrong, body)."""
    try:
        async with session.request(
            request.method, request.path, headers=request.headers, data=request.body
        ) as response:
            body = await response.read()
            ok = response.status in request.ok
            return ok, "" if ok else f"HTTP {response.status}", body
    except (aiohttp.ClientError, TimeoutError) as exc:
        return False, type(exc).__name__, b""


@dataclass(frozen=True)
class StepResult:
    rate: float  # the scheduled arrival rate, per second
    seconds: float
    scheduled: int
    completed: int
    errors: int
    late: int
    dropped: int
    achieved_rate: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    generator_cpu: float  # the generator's CPU use during the step, 1.0 = one core
    error_samples: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict[str, Any])

    def holds(self, p99_ms: float) -> bool:
        """Under the latency bound with nothing failed, dropped or fallen short of the rate."""
        return (
            self.errors == 0
            and self.dropped == 0
            and self.p99_ms < p99_ms
            and self.achieved_rate >= 0.95 * self.rate
        )

    def summary(self) -> dict[str, Any]:
        return {
            "rate": round(self.rate, 1), "achieved_rate": round(self.achieved_rate, 1),
            "p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "p99_ms": self.p99_ms,
            "max_ms": self.max_ms, "errors": self.errors, "late": self.late,
            "dropped": self.dropped, "generator_cpu": round(self.generator_cpu, 2),
            **({"error_samples": self.error_samples} if self.error_samples else {}),
            **self.extra,
        }  # fmt: skip


def _ms(histogram: HdrHistogram, percentile: float) -> float:
    return round(histogram.get_value_at_percentile(percentile) / 1000, 2)


async def open_loop(
    session: aiohttp.ClientSession,
    flow: Flow,
    rate: float,
    seconds: float,
    *,
    max_in_flight: int = 1024,
) -> StepResult:
    """Start ``rate`` flows a second for ``seconds``, on schedule, and wait for them all."""
    loop = asyncio.get_running_loop()
    recorder = Recorder()
    total = max(1, round(rate * seconds))
    interval = 1.0 / rate
    in_flight: set[asyncio.Task[None]] = set()
    late = dropped = 0

    cpu_before = time.process_time()
    start = time.monotonic() + 0.01
    number = 0
    while number < total:
        now = time.monotonic()
        due = min(total, int((now - start) / interval) + 1)
        while number < due:
            scheduled = start + number * interval
            if now - scheduled > LATE_S:
                late += 1
            if len(in_flight) >= max_in_flight:
                dropped += 1
            else:
                task = loop.create_task(flow(number, scheduled, session, recorder))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            number += 1
        if number < total:
            await asyncio.sleep(max(0.0, start + number * interval - time.monotonic()))
    if in_flight:
        await asyncio.wait(in_flight)
    cpu = time.process_time() - cpu_before
    wall = max(recorder.last_done, start + total * interval) - start
    histogram = recorder.latency
    return StepResult(
        rate=rate, seconds=seconds, scheduled=total, completed=recorder.completed,
        errors=recorder.errors, late=late, dropped=dropped,
        achieved_rate=(recorder.completed - recorder.errors) / wall,
        p50_ms=_ms(histogram, 50), p90_ms=_ms(histogram, 90), p99_ms=_ms(histogram, 99),
        max_ms=round(histogram.get_max_value() / 1000, 2), generator_cpu=cpu / wall,
        error_samples=recorder.error_samples,
    )  # fmt: skip


def client_session(base_url: str, *, connections: int = 2048) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        base_url=base_url,
        # Idle connections are closed before the server's keep-alive (uvicorn: 5 s) would, so
        # a request never goes out on a connection the server is closing.
        connector=aiohttp.TCPConnector(
            limit=connections, limit_per_host=connections, keepalive_timeout=2
        ),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
    )
