"""Retrying a subscriber that failed: outages wait it out, broken handlers use a budget.

Dramatiq's own ``Retries`` counts every failure against one budget, so an outage of a store
or of the mail server longer than that budget (about 2-4 minutes by default) dead-lettered
every message relayed meanwhile, healthy ones included. Here a failure that is an outage
(:func:`shop_kernel.outages.is_outage`) is retried with a backoff capped at
``outage_max_backoff_ms`` for as long as ``outage_max_age_ms`` since that message's outage
began, and does not touch the budget; any other failure uses the budget and then ends in the
dead-letter queue. Log lines name the subscriber, the event type and the error, never the
message's payload.
"""

from __future__ import annotations

from typing import Any, cast

import dramatiq
from dramatiq.common import compute_backoff, current_millis
from dramatiq.errors import ActorNotFound

from shop_kernel.log import get_logger
from shop_kernel.messaging.metrics import OUTAGE_RETRIES
from shop_kernel.messaging.registry import event_types_of, subscriber_of
from shop_kernel.outages import is_outage

log = get_logger(__name__)

OUTAGE_MAX_BACKOFF_MS = 30_000
# Message options this middleware keeps: the budget used, and the current outage.
RETRIES = "retries"
OUTAGE_SINCE = "outage_since"
OUTAGE_RETRIES_OPTION = "outage_retries"
LAST_ERROR = "last_error"


def error_of(failure: BaseException) -> str:
    return f"{type(failure).__name__}: {failure}"[:500]


class BackboneRetries(dramatiq.Middleware):
    def __init__(
        self,
        *,
        max_retries: int,
        min_backoff_ms: int,
        max_backoff_ms: int,
        outage_max_age_ms: int,
        outage_max_backoff_ms: int = OUTAGE_MAX_BACKOFF_MS,
    ) -> None:
        self.max_retries = max_retries
        self.min_backoff_ms = min_backoff_ms
        self.max_backoff_ms = max_backoff_ms
        self.outage_max_age_ms = outage_max_age_ms
        self.outage_max_backoff_ms = outage_max_backoff_ms

    @property
    def actor_options(self) -> set[str]:
        return {"max_retries", "throws"}

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is None:
            return
        options = message.options
        where: dict[str, Any] = {
            "subscriber": subscriber_of(message.actor_name),
            "event_type": event_types_of(options),
            "message_id": message.message_id,
            "error": error_of(exception),
        }
        try:
            actor_options: dict[str, Any] = (
                cast("Any", broker).get_actor(message.actor_name).options
            )
        except ActorNotFound:  # pragma: no cover - messages for unknown actors are deferred first
            log.error("message for an actor this worker does not have", **where)
            message.fail()
            return
        throws = options.get("throws") or actor_options.get("throws")
        if throws and isinstance(exception, throws):
            log.error("message cannot be handled; dead-lettered", **where)
            message.fail()
            return
        if is_outage(exception):
            self._wait_out_the_outage(broker, message, exception, where)
            return
        options.pop(OUTAGE_SINCE, None)  # the dependency answered: any outage is over
        options[LAST_ERROR] = type(exception).__name__
        retries = options[RETRIES] = int(options.get(RETRIES, 0)) + 1
        max_retries = int(
            options.get("max_retries", actor_options.get("max_retries", self.max_retries))
        )
        if retries > max_retries:
            log.error(
                "subscriber kept failing; dead-lettered", retries=retries - 1, **where,
                exc_info=exception,
            )  # fmt: skip
            message.fail()
            return
        _, delay = compute_backoff(
            retries - 1, factor=self.min_backoff_ms, max_backoff=self.max_backoff_ms
        )
        log.warning(
            "subscriber failed; retrying", retry=retries, of=max_retries, delay_ms=delay,
            **where, exc_info=exception,
        )  # fmt: skip
        _requeue(broker, message, delay)

    def _wait_out_the_outage(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        exception: BaseException,
        where: dict[str, Any],
    ) -> None:
        options = message.options
        now = current_millis()
        since = int(options.setdefault(OUTAGE_SINCE, now))
        if now - since > self.outage_max_age_ms:
            log.error(
                "a dependency stayed out of reach longer than allowed; dead-lettered",
                outage_s=round((now - since) / 1000), **where,
            )  # fmt: skip
            message.fail()
            return
        attempt = options[OUTAGE_RETRIES_OPTION] = int(options.get(OUTAGE_RETRIES_OPTION, 0)) + 1
        options[LAST_ERROR] = type(exception).__name__
        _, delay = compute_backoff(
            attempt - 1, factor=self.min_backoff_ms, max_backoff=self.outage_max_backoff_ms
        )
        OUTAGE_RETRIES.labels(subscriber_of(message.actor_name)).inc()
        # The subscriber's circuit says when an outage begins and ends, once; per message
        # this would only repeat it.
        log.debug(
            "a dependency is out of reach; waiting it out", attempt=attempt, delay_ms=delay,
            outage_s=round((now - since) / 1000), **where,
        )  # fmt: skip
        _requeue(broker, message, delay)


def _requeue(broker: dramatiq.Broker, message: dramatiq.MessageProxy, delay: int) -> None:
    """Send the message again after ``delay`` ms (Dramatiq's proxy stands for its message)."""
    broker.enqueue(cast("dramatiq.Message[Any]", message), delay=delay)  # pyright: ignore[reportUnknownMemberType]
