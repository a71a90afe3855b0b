"""Outages are waited out; broken handlers use their retry budget and then dead-letter.

The failures are the real exceptions the stores' and the mail server's clients raise; the
broker is the real Redis broker with the backbone's middleware.
"""

from __future__ import annotations

import errno
import time
import uuid
from collections.abc import Iterator
from typing import Any

import dramatiq
import psycopg
import pytest
from dramatiq import Worker
from dramatiq.brokers.redis import RedisBroker
from pymongo.errors import AutoReconnect, DuplicateKeyError, ServerSelectionTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from sqlalchemy.exc import IntegrityError, OperationalError

from shop_kernel.messaging.broker import create_broker
from shop_kernel.messaging.circuit import Circuit, Paused
from shop_kernel.messaging.dead_letters import dead_letters
from shop_kernel.outages import Unavailable, is_outage


class MailServerBusy(Unavailable):
    pass


def _wrapped(cause: BaseException) -> OperationalError:
    """What SQLAlchemy raises for a driver error (the driver's error as its cause)."""
    try:
        raise OperationalError("SELECT 1", {}, cause) from cause
    except OperationalError as wrapped:
        return wrapped


@pytest.mark.parametrize(
    "failure",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
        OSError(errno.EHOSTUNREACH, "No route to host"),
        TimeoutError("timed out"),
        psycopg.OperationalError("connection failed: Connection refused"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        _wrapped(psycopg.OperationalError("server closed the connection unexpectedly")),
        ServerSelectionTimeoutError("127.0.0.1:27017: [Errno 111] Connection refused"),
        AutoReconnect("connection closed"),
        RedisConnectionError("Error 111 connecting to 127.0.0.1:6379"),
        MailServerBusy("SMTP 451: try again later"),
    ],
    ids=lambda failure: type(failure).__name__,
)
def test_an_unreachable_dependency_is_an_outage(failure: BaseException) -> None:
    assert is_outage(failure)


@pytest.mark.parametrize(
    "failure",
    [
        ValueError("a bug"),
        KeyError("missing"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        _wrapped(psycopg.errors.UniqueViolation("duplicate key value")),
        IntegrityError("INSERT", {}, Exception("violates check constraint")),
        DuplicateKeyError("E11000"),
        ResponseError("WRONGTYPE"),
    ],
    ids=lambda failure: type(failure).__name__,
)
def test_an_error_of_the_work_itself_is_not_an_outage(failure: BaseException) -> None:
    assert not is_outage(failure)


def _read_cache() -> None:
    try:
        raise RedisConnectionError("Connection reset by peer")
    except RedisConnectionError as lost:
        raise RuntimeError("could not read the cache") from lost


def test_an_error_raised_because_of_an_outage_is_one() -> None:
    with pytest.raises(RuntimeError) as failure:
        _read_cache()
    assert is_outage(failure.value)


# Handlers that fail as told: a queue of failures per key, then success.
SCRIPTS: dict[str, list[BaseException]] = {}
DONE: dict[str, int] = {}


@pytest.fixture
def broker(redis_url: str) -> Iterator[RedisBroker]:
    broker = create_broker(
        redis_url, max_retries=1, min_backoff_ms=20, max_backoff_ms=100,
        outage_max_age_ms=60_000,
    )  # fmt: skip
    yield broker
    broker.close()


def _run(broker: RedisBroker, queue: str, key: str, within: float = 30) -> None:
    @dramatiq.actor(broker=broker, queue_name=queue, actor_name=f"{queue}.flaky")
    async def flaky(script: str) -> None:  # pyright: ignore[reportUnusedFunction]
        failures = SCRIPTS[script]
        if failures:
            raise failures.pop(0)
        DONE[script] = DONE.get(script, 0) + 1

    broker.emit_after("process_boot")
    worker = Worker(broker, worker_threads=2, worker_timeout=20)
    worker.start()
    try:
        flaky.send(key)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and not DONE.get(key) and not _dead(broker, queue):
            time.sleep(0.05)
        worker.join()
    finally:
        worker.stop()


def _dead(broker: RedisBroker, queue: str) -> list[Any]:
    return dead_letters(broker, [queue])


def _script(*failures: BaseException) -> tuple[str, str]:
    queue, key = f"q{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    SCRIPTS[key] = list(failures)
    return queue, key


def test_an_outage_longer_than_the_retry_budget_is_waited_out(broker: RedisBroker) -> None:
    queue, key = _script(*[ConnectionRefusedError(errno.ECONNREFUSED, "refused")] * 6)
    _run(broker, queue, key)
    assert DONE.get(key) == 1  # seven attempts, though the budget allows two
    assert _dead(broker, queue) == []


def test_a_broken_handler_uses_its_budget_and_is_dead_lettered(broker: RedisBroker) -> None:
    queue, key = _script(*[ValueError("a bug")] * 6)
    _run(broker, queue, key)
    assert DONE.get(key) is None
    [letter] = _dead(broker, queue)
    assert letter.attempts == 2
    assert "ValueError: a bug" in letter.error


def test_outages_do_not_spend_the_budget_of_a_later_error(broker: RedisBroker) -> None:
    queue, key = _script(
        RedisConnectionError("down"), RedisConnectionError("down"), ValueError("once"),
    )  # fmt: skip
    _run(broker, queue, key)
    assert DONE.get(key) == 1
    assert _dead(broker, queue) == []


def test_an_outage_longer_than_allowed_is_dead_lettered(redis_url: str) -> None:
    broker = create_broker(
        redis_url, max_retries=100, min_backoff_ms=20, max_backoff_ms=100,
        outage_max_age_ms=300,
    )  # fmt: skip
    try:
        queue, key = _script(*[MailServerBusy("SMTP 421 closing")] * 1000)
        _run(broker, queue, key)
        assert DONE.get(key) is None
        [letter] = _dead(broker, queue)
        assert "MailServerBusy" in letter.error
        assert letter.attempts > 2
    finally:
        broker.close()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_after_an_outage_one_probe_at_a_time_goes_through() -> None:
    clock = Clock()
    circuit = Circuit("views.Projector", probe_every=1.0, clock=clock)
    circuit.enter()
    circuit.failed(ServerSelectionTimeoutError("no server"))
    with pytest.raises(Paused):
        circuit.enter()  # moments after the outage: wait
    clock.now += 1.5
    circuit.enter()  # the probe
    with pytest.raises(Paused):
        circuit.enter()  # while the probe is out, everyone else waits
    circuit.failed(ServerSelectionTimeoutError("still no server"))
    clock.now += 1.5
    circuit.enter()
    circuit.succeeded()
    circuit.enter()
    circuit.enter()  # closed: everything goes through again
    assert not circuit.is_open


def test_an_error_of_the_work_itself_closes_the_circuit() -> None:
    clock = Clock()
    circuit = Circuit("views.Projector", clock=clock)
    circuit.failed(RedisConnectionError("down"))
    clock.now += 2
    circuit.enter()
    circuit.failed(ValueError("a bug, but the store answered"))
    circuit.enter()
    assert not circuit.is_open


def test_a_paused_delivery_is_an_outage_and_waits_without_spending_the_budget() -> None:
    assert is_outage(Paused("waiting"))
