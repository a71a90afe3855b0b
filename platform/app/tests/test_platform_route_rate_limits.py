"""shop_platform.http.rate_limits: a limiter per client address in front of single routes
(real Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from litestar import Litestar, get, post
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from shop_kernel.rate_limits import KEY_PREFIX
from shop_platform.http.rate_limits import rate_limit_middleware


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
