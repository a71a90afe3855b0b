"""One subscriber's circuit: after an outage, its messages wait instead of each timing out.

When a delivery meets an outage (a store or the mail server out of reach), every other
message of that subscriber would meet it too, each holding a worker thread for as long as
the client's timeout: a backlog then starves the healthy subscribers of threads. So after an
outage the subscriber's messages fail at once (:class:`Paused`, retried with the outage
backoff) except for one probe at a time, at most one every ``probe_every`` seconds; the
first delivery that gets through closes the circuit again.

The usual circuit-breaker libraries let every call through while "half open", which is the
thundering herd this is here to avoid; this one lets exactly one through.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from shop_kernel.log import get_logger
from shop_kernel.outages import Unavailable, is_outage

log = get_logger(__name__)


class Paused(Unavailable):
    """The subscriber met an outage moments ago; this message waits for the next probe."""


class Circuit:
    def __init__(
        self, subscriber: str, *, probe_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self._subscriber = subscriber
        self._probe_every = probe_every
        self._clock = clock
        self._opened_at: float | None = None  # the last outage seen (or probe let through)
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def enter(self) -> None:
        """Let a delivery through, or raise :class:`Paused`."""
        if self._opened_at is None:
            return
        if self._probing or self._clock() - self._opened_at < self._probe_every:
            raise Paused(f"{self._subscriber} waits for a dependency to come back")
        self._probing = True

    def succeeded(self) -> None:
        if self._opened_at is not None:
            log.info(
                "subscriber resumed: its dependencies answer again", subscriber=self._subscriber
            )
        self._opened_at, self._probing = None, False

    def failed(self, failure: BaseException) -> None:
        if not is_outage(failure):
            # The dependencies answered (the work itself failed): nothing to wait for.
            self._opened_at, self._probing = None, False
            return
        if self._opened_at is None:
            log.warning(
                "subscriber paused: a dependency is out of reach",
                subscriber=self._subscriber, error=f"{type(failure).__name__}: {failure}"[:300],
            )  # fmt: skip
        self._opened_at, self._probing = self._clock(), False
