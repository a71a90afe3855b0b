"""The catalog cache: a change retires its own product; what an order does to stock retires
no page; every process notices within its check interval; nothing stale outlives a change."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from shop_catalog.adapters import cache as catalog_cache
from shop_catalog.adapters.cache import CHECK_S, CatalogCache, CatalogChanges
from shop_catalog.adapters.view import ProductCatalogProjector, document
from shop_catalog_contract import ProductChanged, ProductSnapshot, Stock, StockHeld
from shop_kernel.mongo import ReadStore
from shop_kernel.views import cache_generation_key
from shop_kernel.wire import Amount


async def forget_cached(redis: Redis) -> None:
    """Drop the catalog's cached answers in Redis, and nothing else: the session's Redis
    database also holds its claim, queues and other tests' keys."""
    keys = [key async for key in redis.scan_iter("shop:cache:product_catalog:*")]
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


def product(sku: str, version: int, price: int = 100) -> dict[str, Any]:
    return {"_id": sku, "price": {"amount": price}, "is_active": True, "version": version}


async def after_a_check() -> None:
    await asyncio.sleep(CHECK_S * 1.5)


async def test_a_held_answer_is_served_without_asking_redis_for_it(redis: Redis) -> None:
    cache = CatalogCache(redis)
    assert await cache.product("CUP-1") is None
    await cache.keep([product("CUP-1", 1)])
    await forget_cached(redis)  # Redis forgets it
    assert await cache.product("CUP-1") == product("CUP-1", 1)
    elsewhere = CatalogCache(redis)  # another replica holds nothing and Redis has nothing
    assert await elsewhere.product("CUP-1") is None


async def test_answers_another_replica_cached_are_served_from_redis_and_then_held(
    redis: Redis,
) -> None:
    first, second = CatalogCache(redis), CatalogCache(redis)
    await first.product("CUP-1")  # both have looked at Redis once
    await second.product("CUP-1")
    await first.keep([product("CUP-1", 1)])
    await first.keep_page("20:cup", ["CUP-1"], None)
    assert await second.product("CUP-1") == product("CUP-1", 1)
    assert await second.page("20:cup") == (["CUP-1"], None)
    await forget_cached(redis)
    assert await second.product("CUP-1") == product("CUP-1", 1)
    assert await second.page("20:cup") == (["CUP-1"], None)


async def test_a_change_retires_its_product_alone_in_every_process(redis: Redis) -> None:
    reader = CatalogCache(redis)
    await reader.product("CUP-1")
    await reader.keep([product("CUP-1", 1), product("MUG-1", 4)])
    await CatalogChanges(redis).retire({"CUP-1": 2}, lists_too=False)  # another process
    await after_a_check()
    assert await reader.product("CUP-1") is None  # neither held nor in Redis
    await forget_cached(redis)
    assert await reader.product("MUG-1") == product("MUG-1", 4)  # still held here


async def test_stock_changes_keep_the_pages_and_other_changes_retire_them(redis: Redis) -> None:
    reader = CatalogCache(redis)
    await reader.page("20:")
    await reader.keep_page("20:", ["CUP-1", "MUG-1"], "cursor")
    changes = CatalogChanges(redis)
    await changes.retire({"CUP-1": 2}, lists_too=False)  # a reservation: stock figures only
    await after_a_check()
    assert await reader.page("20:") == (["CUP-1", "MUG-1"], "cursor")
    assert await CatalogCache(redis).page("20:") == (["CUP-1", "MUG-1"], "cursor")
    await changes.retire({"CUP-1": 3}, lists_too=True)  # a new name, price or activity
    await after_a_check()
    assert await reader.page("20:") is None
    assert await CatalogCache(redis).page("20:") is None


async def test_an_answer_read_before_a_change_is_never_kept_after_it(redis: Redis) -> None:
    slow, other = CatalogCache(redis), CatalogCache(redis)
    await slow.product("CUP-1")
    await other.product("CUP-1")
    # `slow` read version 1 from the view; before it could keep it, version 2 was projected.
    await CatalogChanges(redis).retire({"CUP-1": 2}, lists_too=False)
    await other.keep([product("CUP-1", 1)])  # a third process's late fill: Redis refuses it
    assert await CatalogCache(redis).product("CUP-1") is None
    await after_a_check()
    await slow.product("MUG-9")  # its next look reads the feed
    await slow.keep([product("CUP-1", 1)])  # too late: the feed announced version 2
    assert await slow.product("CUP-1") is None
    await slow.keep([product("CUP-1", 2, price=250)])
    assert await CatalogCache(redis).product("CUP-1") == product("CUP-1", 2, price=250)


async def test_a_rebuild_retires_every_answer(redis: Redis) -> None:
    reader = CatalogCache(redis)
    await reader.product("CUP-1")
    await reader.keep([product("CUP-1", 1)])
    await reader.keep_page("20:", ["CUP-1"], None)
    await redis.incr(cache_generation_key("product_catalog"))  # what a rebuild does
    await after_a_check()
    assert await reader.product("CUP-1") is None
    assert await reader.page("20:") is None


async def test_a_process_that_fell_behind_the_feed_forgets_what_it_holds(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_cache, "FEED_LENGTH", 3)
    changes = CatalogChanges(redis)
    await changes.retire({"OTHER": 1}, lists_too=False)
    reader = CatalogCache(redis)
    await reader.product("CUP-1")  # it has seen the feed up to OTHER's change
    await reader.keep([product("CUP-1", 1)])
    for n in range(20):  # more than the feed keeps: what concerned CUP-1 may be gone
        await changes.retire({f"OTHER-{n}": 1}, lists_too=False)
    await redis.xtrim("shop:cache:product_catalog:changes", maxlen=3)
    await after_a_check()
    await reader.product("MUG-1")  # its next look
    await forget_cached(redis)
    assert await reader.product("CUP-1") is None


async def test_the_process_holds_a_bounded_number_of_answers(redis: Redis) -> None:
    cache = CatalogCache(redis, local_entries=2)
    await cache.product("A")
    await cache.keep([product("A", 1), product("B", 1)])
    await cache.product("A")  # A is the most recent now
    await cache.keep([product("C", 1)])
    await forget_cached(redis)
    assert [await cache.product(sku) is not None for sku in ("A", "B", "C")] == [True, False, True]


async def test_while_redis_fails_nothing_is_served_from_the_cache_and_afterwards_nothing_stale(
    redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = CatalogCache(redis)
    await cache.product("CUP-1")
    await cache.keep([product("CUP-1", 1)])

    def unavailable(*_: object, **__: object) -> Any:
        raise RedisConnectionError("Redis is down")

    await after_a_check()
    with monkeypatch.context() as patched:
        patched.setattr(redis, "pipeline", unavailable)
        assert await cache.product("CUP-1") is None
    # Meanwhile the product changed (its retirement reached Redis, not this process).
    await CatalogChanges(redis).retire({"CUP-1": 2}, lists_too=False)
    await after_a_check()
    assert await cache.product("CUP-1") is None  # what it held before is gone


async def test_the_projector_retires_only_what_a_reservation_changed(
    redis: Redis, mongodb_server_url: str, mongodb_database: str
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_server_url)
    try:
        projector = ProductCatalogProjector(ReadStore(client[mongodb_database]), redis)
        reader = CatalogCache(redis)
        held, kept = f"HELD-{uuid.uuid4().hex[:6]}".upper(), f"KEPT-{uuid.uuid4().hex[:6]}".upper()
        await reader.product(held)
        await reader.keep([product(held, 1), product(kept, 1)])
        await reader.keep_page("20:", [held, kept], None)
        await projector([stock_held(held, 2)])
        await after_a_check()
        assert await reader.product(held) is None  # its stock figures changed
        assert await reader.product(kept) == product(kept, 1)
        assert await reader.page("20:") == ([held, kept], None)
        await projector([changed(kept, 2)])
        await after_a_check()
        assert await reader.product(kept) is None
        assert await reader.page("20:") is None
    finally:
        await client.close()


def snapshot(sku: str, reserved: int = 0) -> ProductSnapshot:
    return ProductSnapshot(
        sku=sku, name="Cup", description="", price=Amount(100, "EUR"),
        stock=Stock(on_hand=10, reserved=reserved, available=10 - reserved), is_active=True,
    )  # fmt: skip


def stock_held(sku: str, version: int) -> StockHeld:
    return StockHeld(aggregate_id=sku, aggregate_version=version, product=snapshot(sku, 2))


def changed(sku: str, version: int) -> ProductChanged:
    return ProductChanged(aggregate_id=sku, aggregate_version=version, product=snapshot(sku))


def test_the_view_document_is_the_snapshot_and_its_search_key() -> None:
    assert document(snapshot("CUP-1"))["name_key"] == "cup"
