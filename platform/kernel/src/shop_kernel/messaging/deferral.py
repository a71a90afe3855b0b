"""Messages this worker cannot handle are handed back for a worker that can.

Relays route by what every running release declares, so during a rolling deploy a worker of
the old release finds, on its context's queue, messages for a subscriber only the new release
has, or an event version only the new release reads. It must neither fail them (that would
spend their retries, then dead-letter them) nor drop them: it puts each back with a short
delay, for a worker of the release that knows it, and skips it. A message no worker takes
for longer than the outage allowance is dead-lettered, so it stays visible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import dramatiq
from dramatiq.common import compute_backoff, current_millis
from dramatiq.middleware import SkipMessage

from shop_kernel.log import get_logger
from shop_kernel.messaging.metrics import DEFERRALS
from shop_kernel.messaging.registry import EVENT_TYPES, subscriber_of
from shop_kernel.messaging.retries import LAST_ERROR

log = get_logger(__name__)

DEFERRALS_OPTION = "deferrals"
DEFERRED_SINCE = "deferred_since"
FIRST_DELAY_MS = 100
MAX_DELAY_MS = 5_000


class DeferUnfamiliar(dramatiq.Middleware):
    """``handled``: per actor of this worker, the event types it handles."""

    def __init__(self, handled: Mapping[str, frozenset[str]], *, max_age_ms: int) -> None:
        self._handled = handled
        self._max_age_ms = max_age_ms

    def before_process_message(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy
    ) -> None:
        actor = message.actor_name
        carried = message.options.get(EVENT_TYPES) or [message.options.get("event_type")]
        types = self._handled.get(actor)
        if types is None and actor in cast("Any", broker).actors:
            return  # an actor of this worker's own that is not a subscriber
        unknown = [t for t in carried if t is not None and types is not None and t not in types]
        if types is not None and not unknown:
            return
        self._defer(broker, message, unknown[0] if unknown else carried[0])

    def _defer(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, event_type: Any
    ) -> None:
        options = message.options
        now = current_millis()
        since = int(options.setdefault(DEFERRED_SINCE, now))
        deferrals = options[DEFERRALS_OPTION] = int(options.get(DEFERRALS_OPTION, 0)) + 1
        where = {"subscriber": message.actor_name, "event_type": event_type}
        if now - since > self._max_age_ms:
            options[LAST_ERROR] = "no running worker handles this subscriber and event type"
            log.error("message no worker handles; dead-lettered", deferrals=deferrals, **where)
            message.fail()
            raise SkipMessage
        _, delay = compute_backoff(deferrals - 1, factor=FIRST_DELAY_MS, max_backoff=MAX_DELAY_MS)
        DEFERRALS.labels(subscriber_of(message.actor_name)).inc()
        emit = log.info if deferrals == 1 else log.debug
        emit("message for another release handed back", deferrals=deferrals, **where)
        broker.enqueue(cast("dramatiq.Message[Any]", message), delay=delay)  # pyright: ignore[reportUnknownMemberType]
        raise SkipMessage
