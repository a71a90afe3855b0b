"""shop_kernel.rate_limits: the limiter every API process shares (real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from shop_devkit.embedded import free_port
from shop_kernel.rate_limits import KEY_PREFIX, RateLimiter


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(redis_url)  # pyright: ignore[reportUnknownMemberType]
    yield client
    await client.aclose()


def unique_name() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_a_limiter_allows_the_limit_then_refuses_until_a_slot_frees(redis: Redis) -> None:
    limiter = RateLimiter(redis, (3, 2), name=unique_name())
    decisions = [await limiter.hit("198.51.100.7") for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1]
    assert 1 <= refused.retry_after <= 2
    assert refused.headers()["Retry-After"] == str(refused.retry_after)
    assert "Retry-After" not in decisions[0].headers()
    assert (await limiter.hit("198.51.100.7")).allowed is False  # a refusal is not counted

    await asyncio.sleep(refused.retry_after + 0.1)  # as long as the refusal said, or more
    assert (await limiter.hit("198.51.100.7")).allowed


async def test_counts_are_kept_per_key_and_per_limiter(redis: Redis) -> None:
    name = unique_name()
    per_address = RateLimiter(redis, (1, 60), name=name)
    same_name = RateLimiter(redis, (1, 60), name=name)
    other = RateLimiter(redis, (1, 60), name=unique_name())

    assert (await per_address.hit("198.51.100.7")).allowed
    assert not (await same_name.hit("198.51.100.7")).allowed  # one count, wherever it runs
    assert (await per_address.hit("198.51.100.8")).allowed
    assert (await other.hit("198.51.100.7")).allowed
    assert (await per_address.hit("198.51.100.7", "a@example.com")).allowed
    assert (await per_address.hit("198.51.100.7", "b@example.com")).allowed


async def test_concurrent_hits_over_many_connections_let_exactly_the_limit_through(
    redis_url: str,
) -> None:
    """Limiters of their own on connections of their own, as replicas would have them; the
    window is an hour, so however slowly the hits land they all fall into it."""
    name = unique_name()
    clients: list[Redis] = [
        Redis.from_url(redis_url)  # pyright: ignore[reportUnknownMemberType]
        for _ in range(10)
    ]
    limiters = [RateLimiter(client, (10, 3600), name=name) for client in clients]
    try:
        decisions = await asyncio.gather(
            *(limiters[i % len(limiters)].hit("203.0.113.9") for i in range(200))
        )
    finally:
        for client in clients:
            await client.aclose()

    assert sum(d.allowed for d in decisions) == 10
    assert all(1 <= d.retry_after <= 3600 for d in decisions if not d.allowed)


def test_limits_are_written_as_strings_or_as_count_and_seconds() -> None:
    client: Redis = Redis.from_url("redis://127.0.0.1:1/0")  # pyright: ignore[reportUnknownMemberType]
    per_minute = RateLimiter(client, "5/minute", name="a")
    per_ten_seconds = RateLimiter(client, (3, 10), name="b")
    assert (per_minute.limit, per_minute.window_s) == (5, 60)
    assert (per_ten_seconds.limit, per_ten_seconds.window_s) == (3, 10)
    for limit in ("often", "0/minute", (0, 60), (5, 0)):
        with pytest.raises(ValueError, match="rate limit"):
            RateLimiter(client, limit, name="c")
    with pytest.raises(ValueError, match="name"):
        RateLimiter(client, (1, 1), name="")


async def test_no_address_or_email_is_readable_in_redis_and_keys_expire(redis: Redis) -> None:
    name = unique_name()
    await RateLimiter(redis, (5, 60), name=name).hit("198.51.100.23", "someone@example.com")
    keys = [key.decode() async for key in redis.scan_iter(match=f"{KEY_PREFIX}:{name}/*")]

    assert len(keys) == 1
    assert "198.51.100.23" not in keys[0]
    assert "someone" not in keys[0]
    assert 0 < await redis.ttl(keys[0]) <= 60


async def test_a_redis_outage_raises_instead_of_letting_attempts_through() -> None:
    down: Redis = Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5
    )
    try:
        with pytest.raises(RedisConnectionError):
            await RateLimiter(down, (5, 60), name=unique_name()).hit("198.51.100.7")
    finally:
        await down.aclose()
