"""The dead-letter queues: messages whose subscriber kept failing, kept for an operator.

Dramatiq moves a message that exhausted its retries (or raised an error it must not retry)
to ``<queue>.XQ``; :class:`FailureReasons` remembers why, so the list says what went wrong,
and :func:`replay` puts a message back at the front of the line with fresh retries.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from redis.asyncio import Redis as AsyncRedis

from shop_kernel.messaging.registry import event_types_of, subscriber_of
from shop_kernel.messaging.retries import (
    LAST_ERROR,
    OUTAGE_RETRIES_OPTION,
    OUTAGE_SINCE,
    RETRIES,
)
from shop_kernel.redis_client import redis_of

REASONS_KEY = "__dead_letter_reasons__"


class FailureReasons(dramatiq.Middleware):
    """Records the last error of every message that ends in a dead-letter queue."""

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        if exception is not None:
            self._remember(broker, message, f"{type(exception).__name__}: {exception}")

    def after_skip_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """A message a middleware gave up on (no worker handles it) says why in its options."""
        self._remember(broker, message, str(message.options.get(LAST_ERROR, "skipped")))

    def _remember(
        self, broker: dramatiq.Broker, message: dramatiq.MessageProxy, reason: str
    ) -> None:
        if not message.failed or not isinstance(broker, RedisBroker):
            return
        redis_id = message.options.get("redis_message_id")
        if redis_id is None:
            return
        redis_of(broker).hset(f"{broker.namespace}:{REASONS_KEY}", redis_id, reason[:2000])


@dataclass(frozen=True)
class DeadLetter:
    id: str
    queue: str
    subscriber: str
    event_type: str
    error: str
    attempts: int
    failed_at: datetime
    message: dramatiq.Message[Any]


def dead_letter_queues(broker: RedisBroker) -> list[str]:
    """Every queue that holds dead letters now, whoever declared it."""
    prefix, suffix = f"{broker.namespace}:", ".XQ"
    scan = redis_of(broker).scan_iter  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    keys = cast("Iterable[bytes]", scan(match=f"{prefix}*{suffix}", count=500))
    return sorted(key.decode().removeprefix(prefix).removesuffix(suffix) for key in keys)


def dead_letters(broker: RedisBroker, queues: Iterable[str] | None = None) -> list[DeadLetter]:
    found: list[DeadLetter] = []
    client = redis_of(broker)
    reasons_key = f"{broker.namespace}:{REASONS_KEY}"
    for queue in sorted(set(dead_letter_queues(broker) if queues is None else queues)):
        key = f"{broker.namespace}:{queue}.XQ"
        entries = cast("list[tuple[bytes, float]]", client.zrange(key, 0, -1, withscores=True))  # pyright: ignore[reportUnknownMemberType]
        for raw_id, score in entries:
            redis_id = raw_id.decode()
            body = cast("bytes | None", client.hget(f"{key}.msgs", redis_id))
            if body is None:
                continue
            message = cast("dramatiq.Message[Any]", dramatiq.Message.decode(body))  # pyright: ignore[reportUnknownMemberType]
            reason = cast("bytes | None", client.hget(reasons_key, redis_id))
            found.append(
                DeadLetter(
                    id=redis_id,
                    queue=queue,
                    subscriber=subscriber_of(message.actor_name),
                    event_type=event_types_of(message.options),
                    error=reason.decode() if reason else _last_error(message.options),
                    attempts=_attempts(message.options),
                    failed_at=datetime.fromtimestamp(score / 1000, UTC),
                    message=message,
                )
            )
    return found


async def prune_reasons(redis: AsyncRedis, namespace: str) -> int:
    """Forget the reasons of dead letters that are gone (expired after the broker's dead-message
    TTL, replayed, or deleted): the hash must not outlive what it explains. Returns how many."""
    reasons_key = f"{namespace}:{REASONS_KEY}"
    alive: set[bytes] = set()
    queues = cast("AsyncIterator[bytes]", redis.scan_iter(match=f"{namespace}:*.XQ", count=500))  # pyright: ignore[reportUnknownMemberType]
    async for key in queues:
        alive.update(cast("list[bytes]", await redis.zrange(key, 0, -1)))  # pyright: ignore[reportUnknownMemberType]
    entries = cast("AsyncIterator[tuple[bytes, bytes]]", redis.hscan_iter(reasons_key, count=500))  # pyright: ignore[reportUnknownMemberType]
    gone: list[bytes] = [redis_id async for redis_id, _reason in entries if redis_id not in alive]
    for start in range(0, len(gone), 500):
        await cast("Any", redis).hdel(reasons_key, *gone[start : start + 500])
    return len(gone)


def replay(broker: RedisBroker, letter: DeadLetter) -> None:
    """Send the message again with fresh retries, then forget the dead letter."""
    options = {k: v for k, v in letter.message.options.items() if k not in _ATTEMPT_OPTIONS}
    fresh = dramatiq.Message[Any](
        queue_name=letter.queue,
        actor_name=letter.message.actor_name,
        args=letter.message.args,
        kwargs=letter.message.kwargs,
        options=options,
    )
    broker.enqueue(fresh)  # pyright: ignore[reportUnknownMemberType]
    key = f"{broker.namespace}:{letter.queue}.XQ"
    with redis_of(broker).pipeline() as pipe:  # pyright: ignore[reportUnknownMemberType]
        pipe.zrem(key, letter.id)
        pipe.hdel(f"{key}.msgs", letter.id)
        pipe.hdel(f"{broker.namespace}:{REASONS_KEY}", letter.id)
        pipe.execute()


# What one round of attempts left on a message; a replay starts without them.
_ATTEMPT_OPTIONS = frozenset({
    RETRIES, OUTAGE_RETRIES_OPTION, OUTAGE_SINCE, LAST_ERROR,
    "traceback", "redis_message_id", "requeue_timestamp", "eta",
})  # fmt: skip


def _attempts(options: dict[str, Any]) -> int:
    return int(options.get(RETRIES, 0)) + int(options.get(OUTAGE_RETRIES_OPTION, 0)) + 1


def _last_error(options: dict[str, Any]) -> str:
    error = options.get(LAST_ERROR)
    return error if isinstance(error, str) and error else "unknown"
