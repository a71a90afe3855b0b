"""Dramatiq's Redis broker as the backbone uses it: tuned for crash recovery, batched sends,
and consumers that wake when a message arrives instead of polling for it."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import dramatiq
import redis
import uvloop
from dramatiq.asyncio import EventLoopThread, set_event_loop_thread
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer  # pyright: ignore[reportPrivateUsage]
from dramatiq.common import compute_backoff, current_millis
from dramatiq.errors import ActorNotFound, ConnectionClosed
from dramatiq.middleware import AsyncIO, TimeLimit
from redis.client import PubSub
from redis.commands.core import Script

from shop_kernel.messaging.dead_letters import FailureReasons
from shop_kernel.messaging.retries import BackboneRetries
from shop_kernel.redis_client import create_broker_redis, redis_of
from shop_kernel.settings import DEAD_LETTER_TTL_S

NAMESPACE = "shop"


def create_broker(
    url: str,
    *,
    heartbeat_timeout_ms: int = 10_000,
    maintenance_chance: int = 20_000,
    max_retries: int = 8,
    min_backoff_ms: int = 500,
    max_backoff_ms: int = 300_000,
    time_limit_ms: int = 60_000,
    outage_max_age_ms: int = 24 * 3600 * 1000,
    dead_letter_ttl_ms: int = DEAD_LETTER_TTL_S * 1000,
    redis_timeout_s: float = 5.0,
) -> RedisBroker:
    """A broker whose dead workers' messages come back within seconds, not minutes.

    Dramatiq requeues a crashed worker's messages only during "maintenance", which runs on
    ``maintenance_chance`` per million commands once the worker has been silent for
    ``heartbeat_timeout_ms``; the defaults (0.1 %, 60 s) can leave a message stranded for
    many minutes after a SIGKILL.
    """
    # Only what the backbone uses: every middleware's hooks run for every message.
    middleware: list[dramatiq.Middleware] = [
        TimeLimit(time_limit=time_limit_ms),
        # Before Retries: Dramatiq runs "after" hooks in reverse, so this one sees the verdict.
        FailureReasons(),
        BackboneRetries(
            max_retries=max_retries,
            min_backoff_ms=min_backoff_ms,
            max_backoff_ms=max_backoff_ms,
            outage_max_age_ms=outage_max_age_ms,
        ),
        UvloopAsyncIO(),
    ]
    return BackboneBroker(
        client=create_broker_redis(url, timeout=redis_timeout_s),
        # Dramatiq forgets dead letters after this; the shop_dead_letters gauge alerts first.
        dead_message_ttl=dead_letter_ttl_ms,
        namespace=NAMESPACE,
        middleware=middleware,
        heartbeat_timeout=heartbeat_timeout_ms,
        maintenance_chance=maintenance_chance,
    )


@dataclass(frozen=True)
class _StandIn:
    """What the broker answers for an actor this worker does not have: enough for Dramatiq
    to queue the message up, so that :class:`DeferUnfamiliar` hands it back (Dramatiq itself
    would dead-letter a message for an unknown actor at once)."""

    actor_name: str
    priority: int = 0
    options: dict[str, Any] = field(default_factory=dict[str, Any])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover - deferred first
        raise RuntimeError(f"{self.actor_name} is not an actor of this worker")


class BackboneBroker(RedisBroker):
    def get_actor(self, actor_name: str) -> Any:
        try:
            return super().get_actor(actor_name)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
        except ActorNotFound:
            return _StandIn(actor_name)

    @property
    def consumer_class(self) -> Any:
        return WokenConsumer

    def enqueue(self, message: dramatiq.Message[Any], *, delay: int | None = None) -> Any:
        """Enqueue as Dramatiq does, then wake the queue's idle consumers."""
        enqueued = cast("dramatiq.Message[Any]", super().enqueue(message, delay=delay))  # pyright: ignore[reportUnknownMemberType]
        redis_of(self).publish(wake_channel(self.namespace, enqueued.queue_name), b"")  # pyright: ignore[reportUnknownMemberType]
        return enqueued


def wake_channel(namespace: str, queue_name: str) -> str:
    """Where an enqueue tells a queue's idle consumers to fetch (a delay queue has its own)."""
    return f"{namespace}:wake:{queue_name}"


# How long an idle consumer of a queue waits for a wake-up before it asks Redis anyway (for
# a message a wake-up missed: one recovered from a dead worker, or sent while its connection
# was down). A delay queue's consumer waits at most its worker's timeout, since the delayed
# messages it holds fall due in between.
WAKE_FALLBACK_S = 1.0


class WokenConsumer(_RedisConsumer):
    """A consumer that, with nothing to fetch, waits for the next enqueue's wake-up (a Redis
    pub/sub message on :func:`wake_channel`) rather than sleeping: a message is taken the
    moment it arrives, however idle the queue was, and an idle queue costs Redis a fetch a
    second, not one every 100 ms.

    The subscription is made before the first fetch and kept, so a wake-up published after
    a fetch came back empty is waiting when the consumer listens; one published before the
    fetch only makes the next wait end at once.
    """

    def __init__(self, broker: RedisBroker, queue_name: str, prefetch: int, timeout: int) -> None:
        super().__init__(broker, queue_name, prefetch, timeout)  # pyright: ignore[reportUnknownMemberType]
        self._client = redis_of(broker)
        self._channel = wake_channel(broker.namespace, queue_name)
        self._wakeups: PubSub | None = None
        delayed = queue_name.endswith(".DQ")
        self._longest_wait_s = timeout / 1000 if delayed else max(WAKE_FALLBACK_S, timeout / 1000)

    def __next__(self) -> MessageProxy | None:
        # Dramatiq's consumer is untyped: its state is read and written through ``own``.
        own: Any = self
        try:
            while True:
                if own.message_cache:
                    data = own.message_cache.pop(0)
                    if data is None:  # pragma: no cover - Dramatiq's own guard (its #266)
                        continue
                    own.misses = 0
                    message: dramatiq.Message[Any] = dramatiq.Message.decode(data)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
                    own.queued_message_ids.add(message.message_id)
                    return MessageProxy(message)
                room: int = own.prefetch - own.outstanding_message_count
                if room <= 0:  # as many in hand as it may hold: wait for them, as Dramatiq does
                    own.misses, backoff_ms = compute_backoff(own.misses, max_backoff=own.timeout)
                    time.sleep(backoff_ms / 1000)
                    return None
                wakeups = self._listening()
                own.message_cache = own.broker.do_fetch(own.queue_name, room)
                if not own.message_cache:
                    _wait_for_a_wakeup(wakeups, self._longest_wait_s)
                    return None
        except redis.ConnectionError as exc:
            self._stop_listening()
            raise ConnectionClosed(exc) from None

    def _listening(self) -> PubSub:
        if self._wakeups is None:
            wakeups = self._client.pubsub(ignore_subscribe_messages=True)  # pyright: ignore[reportUnknownMemberType]
            wakeups.subscribe(self._channel)  # pyright: ignore[reportUnknownMemberType]
            self._wakeups = wakeups
        return self._wakeups

    def _stop_listening(self) -> None:
        if self._wakeups is not None:
            with contextlib.suppress(redis.RedisError):
                self._wakeups.close()
            self._wakeups = None

    def close(self) -> None:
        self._stop_listening()
        super().close()  # pyright: ignore[reportUnknownMemberType]


def _wait_for_a_wakeup(wakeups: PubSub, longest_s: float) -> None:
    """Until a wake-up comes (taking every one already waiting: one fetch serves them all)
    or ``longest_s`` has passed."""
    if wakeups.get_message(timeout=longest_s) is None:  # pyright: ignore[reportUnknownMemberType]
        return
    while wakeups.get_message(timeout=0) is not None:  # pyright: ignore[reportUnknownMemberType]
        continue


class UvloopAsyncIO(AsyncIO):
    """Dramatiq's event loop thread for async actors, running uvloop's loop.

    A delivery is a handful of small database round trips; uvloop's loop spends less CPU on
    each wake-up than asyncio's own (about 10 % less worker CPU per event, measured).
    """

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        thread = EventLoopThread(self.logger)
        thread.loop.close()
        thread.loop = uvloop.new_event_loop()
        thread.start(timeout=1.0)
        set_event_loop_thread(thread)


def enqueue_many(broker: RedisBroker, messages: Sequence[dramatiq.Message[Any]]) -> None:
    """Enqueue ``messages`` in one Redis round trip (a pipeline of Dramatiq's own script).

    Each message gets what ``RedisBroker.enqueue`` gives it (a fresh Redis message id and the
    broker's before/after hooks); only the network round trips are shared.
    """
    if not messages:
        return
    scripts = cast("dict[str, Script]", broker.scripts)  # pyright: ignore[reportUnknownMemberType]
    dispatch = scripts["dispatch"]
    max_unpack: int = broker._max_unpack_size()  # pyright: ignore[reportPrivateUsage, reportUnknownMemberType, reportUnknownVariableType]
    prepared: list[dramatiq.Message[Any]] = [
        cast("dramatiq.Message[Any]", m.copy(options={"redis_message_id": str(uuid.uuid4())}))  # pyright: ignore[reportUnknownMemberType]
        for m in messages
    ]
    with redis_of(broker).pipeline(transaction=False) as pipe:  # pyright: ignore[reportUnknownMemberType]
        for message in prepared:
            broker.emit_before("enqueue", message, None)
            dispatch(
                keys=[broker.namespace],
                args=[  # pyright: ignore[reportUnknownArgumentType]
                    "enqueue",
                    current_millis(),
                    message.queue_name,
                    broker.broker_id,
                    broker.heartbeat_timeout,
                    broker.dead_message_ttl,
                    0,  # no maintenance inside a batch
                    max_unpack,
                    message.options["redis_message_id"],
                    message.encode(),
                ],
                client=pipe,
            )
        for queue_name in sorted({message.queue_name for message in prepared}):
            # After the enqueues in the pipeline's order: a consumer woken finds them. (Woken
            # first, it would find nothing and sleep until the next wake-up.)
            pipe.publish(wake_channel(broker.namespace, queue_name), b"")  # pyright: ignore[reportUnknownMemberType]
        pipe.execute()
    for message in prepared:
        broker.emit_after("enqueue", message, None)
