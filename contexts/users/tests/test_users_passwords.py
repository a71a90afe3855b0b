"""Argon2id hashing with the real library, its concurrency cap, and the common-password list."""

from __future__ import annotations

import asyncio
import re
import secrets
import statistics
import threading
import time
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

import pytest

from shop_users.adapters.passwords import (
    MIN_MEMORY_KIB,
    MIN_TIME_COST,
    Argon2PasswordHasher,
    load_common_passwords,
)

ENCODED = re.compile(
    r"^\$argon2id\$v=19\$m=(?P<m>\d+),t=(?P<t>\d+),p=(?P<p>\d+)\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$"
)


@pytest.fixture(scope="module")
def hasher() -> Argon2PasswordHasher:
    return Argon2PasswordHasher()


class ThreadGauge:
    """Stands in for asyncio.to_thread and records how many calls run in threads at once."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.real_to_thread = asyncio.to_thread
        self.lock = threading.Lock()
        self.current = 0
        self.peak = 0
        self.started = threading.Event()

    async def to_thread(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        def counted() -> Any:
            with self.lock:
                self.current += 1
                self.peak = max(self.peak, self.current)
            self.started.set()
            try:
                # Long enough that uncapped calls would certainly overlap.
                time.sleep(self.hold)
                return fn(*args, **kwargs)
            finally:
                with self.lock:
                    self.current -= 1

        return await self.real_to_thread(counted)


@pytest.fixture
def gauge(monkeypatch: pytest.MonkeyPatch) -> ThreadGauge:
    gauge = ThreadGauge(hold=0.2)
    monkeypatch.setattr(asyncio, "to_thread", gauge.to_thread)
    return gauge


async def test_a_hash_verifies_and_a_wrong_password_does_not(
    hasher: Argon2PasswordHasher,
) -> None:
    password_hash = await hasher.hash("correct horse battery staple")

    assert await hasher.verify(password_hash, "correct horse battery staple")
    assert not await hasher.verify(password_hash, "correct horse battery stapler")
    assert not await hasher.verify(password_hash, "")


async def test_the_hash_is_argon2id_at_least_at_the_owasp_minimum(
    hasher: Argon2PasswordHasher,
) -> None:
    password_hash = await hasher.hash("p4ssw0rd-ünïcode")

    match = ENCODED.match(password_hash)
    assert match is not None, password_hash
    assert int(match["t"]) >= 2
    assert int(match["m"]) >= 19_456
    assert int(match["p"]) == 1
    assert await hasher.verify(password_hash, "p4ssw0rd-ünïcode")


async def test_two_hashes_of_one_password_differ_by_their_salt(
    hasher: Argon2PasswordHasher,
) -> None:
    first, second = await asyncio.gather(hasher.hash("same"), hasher.hash("same"))
    assert first != second


@pytest.mark.parametrize(
    "password_hash",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=19456,t=2,p=1$garbage",
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "$argon2id$v=19$m=19456,t=2,p=1$é$é",
        "$argon2x$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
    ],
)
async def test_a_malformed_or_unsupported_hash_gives_false(
    hasher: Argon2PasswordHasher, password_hash: str
) -> None:
    assert await hasher.verify(password_hash, "whatever") is False


async def test_a_truncated_hash_gives_false(hasher: Argon2PasswordHasher) -> None:
    password_hash = await hasher.hash("secret")
    assert await hasher.verify(password_hash[:-5], "secret") is False


async def test_a_password_that_is_not_valid_unicode_is_refused_without_raising(
    hasher: Argon2PasswordHasher,
) -> None:
    password_hash = await hasher.hash("secret")
    assert await hasher.verify(password_hash, "\ud800") is False
    await hasher.verify_dummy("\ud800")


async def test_needs_rehash_when_the_parameters_change(hasher: Argon2PasswordHasher) -> None:
    stronger = Argon2PasswordHasher(time_cost=3, memory_kib=MIN_MEMORY_KIB + 1024)
    old_hash = await hasher.hash("secret")
    new_hash = await stronger.hash("secret")

    assert not hasher.needs_rehash(old_hash)
    assert not stronger.needs_rehash(new_hash)
    assert stronger.needs_rehash(old_hash)
    assert hasher.needs_rehash(new_hash)
    # A hash made with the old parameters still verifies, so it can be upgraded at login.
    assert await stronger.verify(old_hash, "secret")
    assert hasher.needs_rehash("not a hash")


@pytest.mark.parametrize(
    "parameters",
    [
        {"time_cost": MIN_TIME_COST - 1},
        {"memory_kib": MIN_MEMORY_KIB - 1},
        {"parallelism": 0},
        {"max_concurrent": 0},
    ],
)
def test_parameters_below_the_minimum_are_refused(parameters: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=r"OWASP|max_concurrent"):
        Argon2PasswordHasher(**parameters)


async def test_no_more_than_max_concurrent_hashes_run_at_once(gauge: ThreadGauge) -> None:
    hasher = Argon2PasswordHasher(max_concurrent=2)
    password_hash = await hasher.hash("secret")
    gauge.peak = 0

    await asyncio.gather(
        *(hasher.hash(f"secret-{i}") for i in range(3)),
        *(hasher.verify(password_hash, "secret") for _ in range(2)),
        hasher.verify_dummy("secret"),
    )

    assert gauge.peak == 2


async def test_a_cancelled_hash_keeps_its_slot_until_its_thread_ends(gauge: ThreadGauge) -> None:
    hasher = Argon2PasswordHasher(max_concurrent=1)
    first = asyncio.create_task(hasher.hash("first"))
    while not gauge.started.is_set():
        await asyncio.sleep(0.005)

    first.cancel()
    second = asyncio.create_task(hasher.hash("second"))
    with pytest.raises(asyncio.CancelledError):
        await first
    await second

    assert gauge.peak == 1


def test_one_hasher_serves_several_event_loops() -> None:
    # Built outside any loop; contention in each loop would fail on a semaphore bound to another.
    hasher = Argon2PasswordHasher(max_concurrent=1)

    async def burst() -> list[str]:
        return await asyncio.gather(*(hasher.hash(f"p{i}") for i in range(3)))

    assert len(asyncio.run(burst())) == 3
    assert len(asyncio.run(burst())) == 3


async def _median_seconds(run: Callable[[], Awaitable[object]], times: int = 5) -> float:
    durations: list[float] = []
    for _ in range(times):
        start = time.perf_counter()
        await run()
        durations.append(time.perf_counter() - start)
    return statistics.median(durations)


async def test_verify_dummy_takes_about_as_long_as_verify() -> None:
    hasher = Argon2PasswordHasher()
    password_hash = await hasher.hash("secret")
    await hasher.verify_dummy("warm-up")  # the first call makes the dummy hash

    real = await _median_seconds(lambda: hasher.verify(password_hash, "wrong"))
    dummy = await _median_seconds(lambda: hasher.verify_dummy("wrong"))

    assert real / 3 < dummy < real * 3, (real, dummy)


def test_the_common_password_list_holds_the_usual_suspects() -> None:
    common = load_common_passwords()

    assert len(common) >= 3000
    assert {"password", "123456", "qwerty"} <= common
    assert secrets.token_hex(10) not in common
    assert all(1 <= len(p) <= 128 and p == p.lower() for p in common)
    assert load_common_passwords() is common


def test_the_common_password_file_is_ordered_and_without_duplicates() -> None:
    lines = (
        files("shop_users.adapters")
        .joinpath("common_passwords.txt")
        .read_text(encoding="utf-8")
        .splitlines()
    )

    assert lines[0] == "123456"
    assert len(lines) == len(set(lines))
    assert all(lines)
