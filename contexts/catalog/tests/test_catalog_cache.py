"""The catalog cache: this process's answers in front of Redis, retired by the generation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from shop_catalog.adapters.view import GENERATION_CHECK_S, ProductCache


async def forget_cached(redis: Redis) -> None:
    """Drop the catalog's cached answers in Redis, and nothing else: the session's Redis
    database also holds its claim, queues and other tests' keys."""
    keys = [key async for key in redis.scan_iter("shop:cache:product_catalog:*:*")]
    if keys:
        await redis.delete(*keys)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await forget_cached(client)
    try:
        yield client
    finally:
        await client.aclose()


async def test_a_held_answer_is_served_without_asking_redis_for_it(redis: Redis) -> None:
    cache = ProductCache(redis)
    generation = await cache.generation()
    await cache.keep(generation, "product:CUP-1", {"_id": "CUP-1", "price": 100})
    await forget_cached(redis)  # Redis forgets it (the generation stays)
    assert await cache.get(await cache.generation(), "product:CUP-1") == {
        "_id": "CUP-1", "price": 100,
    }  # fmt: skip
    elsewhere = ProductCache(redis)  # another replica holds nothing and Redis has nothing
    assert await elsewhere.get(await elsewhere.generation(), "product:CUP-1") is None


async def test_a_new_generation_retires_held_answers_within_the_check_interval(
    redis: Redis,
) -> None:
    cache = ProductCache(redis)
    await cache.keep(await cache.generation(), "product:CUP-1", {"price": 100})
    writer = ProductCache(redis)  # the projector, in another process
    await writer.forget_everything()
    await asyncio.sleep(GENERATION_CHECK_S * 1.5)
    assert await cache.get(await cache.generation(), "product:CUP-1") is None


async def test_answers_another_replica_cached_are_served_from_redis_and_then_held(
    redis: Redis,
) -> None:
    first, second = ProductCache(redis), ProductCache(redis)
    await first.keep(await first.generation(), "page:20:cup", {"items": [], "next": None})
    generation = await second.generation()
    assert await second.get(generation, "page:20:cup") == {"items": [], "next": None}
    await forget_cached(redis)
    assert await second.get(generation, "page:20:cup") == {"items": [], "next": None}


async def test_the_process_holds_a_bounded_number_of_answers(redis: Redis) -> None:
    cache = ProductCache(redis, local_entries=2)
    generation = await cache.generation()
    for sku in ("A", "B", "C"):
        await cache.keep(generation, sku, sku)
    await cache.get(generation, "B")
    await forget_cached(redis)
    assert [await cache.get(generation, sku) for sku in ("A", "B", "C")] == [None, "B", "C"]


async def test_while_redis_fails_nothing_held_is_served_and_afterwards_nothing_stale(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ProductCache(redis)
    await cache.keep(await cache.generation(), "product:CUP-1", {"price": 100})

    async def unavailable(*_: object) -> None:
        raise RedisConnectionError("Redis is down")

    await asyncio.sleep(GENERATION_CHECK_S * 1.5)
    with monkeypatch.context() as patched:
        patched.setattr(redis, "get", unavailable)
        generation = await cache.generation()
        assert generation is None
        assert await cache.get(generation, "product:CUP-1") is None
    await asyncio.sleep(GENERATION_CHECK_S * 1.5)
    await forget_cached(redis)
    assert await cache.get(await cache.generation(), "product:CUP-1") is None  # dropped
