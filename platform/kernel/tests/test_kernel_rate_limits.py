"""shop_kernel.rate_limits: the shared limiter and the per-route middleware (real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from litestar import Litestar, get, post
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from shop_devkit.embedded import free_port
from shop_kernel.rate_limits import KEY_PREFIX, RateLimiter, rate_limit_middleware


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


# ------------------------------------------------------------------------------ per route


@post("/auth/token", status_code=200, sync_to_thread=False)
def login() -> str:
    return "token"


@post("/users", sync_to_thread=False)
def register() -> str:
    return "registered"


@get("/health/live", sync_to_thread=False)
def live() -> str:
    return "ok"


async def forget_route_counts(redis_url: str) -> None:
    redis: Redis = Redis.from_url(redis_url)  # pyright: ignore[reportUnknownMemberType]
    try:
        async for key in redis.scan_iter(match=f"{KEY_PREFIX}:route:*"):
            await redis.delete(key)
    finally:
        await redis.aclose()


def limited_app(redis_url: str, limits: dict[tuple[str, str], int]) -> Litestar:
    """The test client serves the app on a loop of its own: open its Redis client there."""
    clients: list[Redis] = []

    @asynccontextmanager
    async def open_redis(_app: Litestar) -> AsyncIterator[None]:
        clients.append(Redis.from_url(redis_url))  # pyright: ignore[reportUnknownMemberType]
        try:
            yield
        finally:
            await clients.pop().aclose()

    return Litestar(
        route_handlers=[login, register, live],
        lifespan=[open_redis],
        middleware=rate_limit_middleware(limits, redis=lambda: clients[0]),
    )


async def test_route_limits_count_per_route_and_answer_429_with_retry_after(
    redis_url: str,
) -> None:
    await forget_route_counts(redis_url)
    app = limited_app(redis_url, {("POST", "/auth/token"): 2, ("post", "/users/"): 3})
    async with AsyncTestClient(app=app) as client:
        logins = [await client.post("/auth/token") for _ in range(3)]
        registrations = [(await client.post("/users")).status_code for _ in range(4)]
        others = [await client.get("/health/live") for _ in range(5)]
        refused = await client.post("/auth/token/")
    await forget_route_counts(redis_url)

    assert [r.status_code for r in logins] == [200, 200, 429]
    assert registrations == [201, 201, 201, 429]
    assert [r.status_code for r in others] == [200] * 5
    assert all("ratelimit-limit" not in r.headers for r in others)
    first = logins[0].headers
    assert (first["ratelimit-limit"], first["ratelimit-remaining"]) == ("2", "1")
    assert first["ratelimit-policy"] == "2; w=60"
    assert 1 <= int(first["ratelimit-reset"]) <= 60
    assert "retry-after" not in first
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["ratelimit-limit"] == "2"
    assert refused.headers["ratelimit-remaining"] == "0"
