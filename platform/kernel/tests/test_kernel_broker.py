"""An idle queue's consumer takes a message when it is enqueued, not at its next poll."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.redis import RedisBroker
from redis import Redis

from shop_devkit.app_plugin import patience
from shop_kernel.messaging import broker as backbone_broker
from shop_kernel.messaging.broker import create_broker, enqueue_many

# Were the consumer to poll, a message would wait this long: far more than the test waits.
NEVER_S = 600.0


@pytest.fixture
def broker(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisBroker]:
    monkeypatch.setattr(backbone_broker, "WAKE_FALLBACK_S", NEVER_S)
    made = create_broker(redis_url)
    yield made
    made.close()


def message(queue: str) -> dramatiq.Message[Any]:
    return dramatiq.Message(queue_name=queue, actor_name="anyone", args=(), kwargs={}, options={})


class Taker:
    """A consumer thread of ``queue`` that notes when the first message reached it."""

    def __init__(self, broker: RedisBroker, queue: str) -> None:
        broker.declare_queue(queue)
        self._consumer = broker.consume(queue, prefetch=1, timeout=int(NEVER_S * 1000))
        self.idle = threading.Event()  # it has fetched once and found nothing
        self.taken: list[Any] = []
        self._thread = threading.Thread(target=self._take, daemon=True)
        self._thread.start()

    def _take(self) -> None:
        while not self.taken:
            got = next(self._consumer)
            if got is None:
                self.idle.set()
            else:
                self.taken.append(got)
                self._consumer.ack(got)

    def wait(self, within: float) -> bool:
        self._thread.join(within)
        return bool(self.taken)

    def close(self) -> None:
        self._consumer.close()


def _idle_taker(broker: RedisBroker, queue: str) -> Taker:
    taker = Taker(broker, queue)
    # It finds the queue empty and waits; give it a moment to be inside that wait.
    taker.idle.wait(30 * patience())
    time.sleep(0.2)
    return taker


def test_an_enqueued_message_wakes_the_idle_consumer_of_its_queue(broker: RedisBroker) -> None:
    queue = f"wake-{uuid.uuid4().hex[:8]}"
    taker = _idle_taker(broker, queue)
    try:
        assert taker.idle.is_set()
        broker.enqueue(message(queue))
        assert taker.wait(30 * patience()), "the consumer slept through the enqueue"
    finally:
        taker.close()


def test_the_relay_s_batched_enqueue_wakes_the_idle_consumer_too(broker: RedisBroker) -> None:
    queue = f"wake-{uuid.uuid4().hex[:8]}"
    taker = _idle_taker(broker, queue)
    try:
        enqueue_many(broker, [message(queue)])
        assert taker.wait(30 * patience()), "the consumer slept through the relay's enqueue"
    finally:
        taker.close()


def test_a_wake_up_sent_before_the_consumer_listened_is_not_lost(broker: RedisBroker) -> None:
    queue = f"wake-{uuid.uuid4().hex[:8]}"
    broker.enqueue(message(queue))  # there before the consumer's first fetch
    taker = Taker(broker, queue)
    try:
        assert taker.wait(30 * patience())
    finally:
        taker.close()


def test_the_relay_s_wake_up_is_sent_after_every_message_it_announces_is_queued(
    broker: RedisBroker, redis_url: str
) -> None:
    # A consumer woken before the messages are queued fetches nothing and sleeps until the
    # next wake-up. Redis's own log of the commands it ran (MONITOR) gives their order.
    queue = f"wake-{uuid.uuid4().hex[:8]}"
    broker.declare_queue(queue)
    ran: list[str] = []
    listening = threading.Event()

    def watch() -> None:
        with Redis.from_url(redis_url).monitor() as monitor:
            listening.set()
            for command in monitor.listen():
                ran.append(str(command["command"]))
                if ran[-1].startswith("PUBLISH") and queue in ran[-1]:
                    return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert listening.wait(30 * patience())
    # A batch larger than one read of Redis's (16 KiB), as a relay's often is.
    batch = [message(queue).copy(args=("x" * 2000,)) for _ in range(20)]
    enqueue_many(broker, batch)
    watcher.join(30 * patience())
    ours = [command for command in ran if queue in command]
    woken = next(n for n, command in enumerate(ours) if command.startswith("PUBLISH"))
    # Each message is queued by Dramatiq's script with an RPUSH onto its queue.
    assert sum(command.startswith("rpush") for command in ours[:woken]) == len(batch)
