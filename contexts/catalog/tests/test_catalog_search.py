"""The catalog view's search: sku or name prefix, in sku order, by index ranges."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from redis.asyncio import Redis

from shop_catalog.adapters.view import BY_NAME, BY_SKU, COLLECTION, ProductCatalog, search_queries
from shop_kernel.mongo import ReadStore


@pytest.fixture
async def catalog(
    mongodb_server_url: str, mongodb_database: str, redis_url: str
) -> AsyncIterator[tuple[ProductCatalog, Any]]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_server_url)
    redis = Redis.from_url(redis_url)
    view = mongo[mongodb_database][f"{COLLECTION}"]
    await view.drop()
    await view.create_index(BY_SKU)
    await view.create_index(BY_NAME)
    names = {"CUP-1": "Blue cup", "CUP-2": "Red cup", "MUG-1": "Cup holder", "MUG-2": "Mug",
             "PLATE-1": "Cupboard plate", "CUP-3": "Hidden cup"}  # fmt: skip
    await view.insert_many([
        {"_id": sku, "name": name, "name_key": name.casefold(), "is_active": sku != "CUP-3"}
        for sku, name in names.items()
    ])  # fmt: skip
    async for key in redis.scan_iter("shop:cache:product_catalog:*:*"):  # cached pages only
        await redis.delete(key)
    try:
        yield ProductCatalog(ReadStore(mongo[mongodb_database]), redis), view
    finally:
        await view.drop()
        await redis.aclose()
        await mongo.close()


async def test_a_search_finds_sku_and_name_prefixes_in_sku_order_and_pages_through_both(
    catalog: tuple[ProductCatalog, Any],
) -> None:
    reader, _ = catalog
    page, cursor = await reader.search(q="cup", limit=10, after=None)
    # skus starting CUP (not the inactive one) and names starting "cup", merged by sku
    assert [doc["_id"] for doc in page] == ["CUP-1", "CUP-2", "MUG-1", "PLATE-1"]
    assert cursor is None
    seen: list[str] = []
    after = None
    while True:
        page, _ = await reader.search(q="Cup", limit=1, after=after)
        if not page:
            break
        seen.append(page[0]["_id"])
        after = page[0]["_id"]
    assert seen == ["CUP-1", "CUP-2", "MUG-1", "PLATE-1"]
    everything, _ = await reader.search(q=None, limit=10, after="MUG-1")
    assert [doc["_id"] for doc in everything] == ["MUG-2", "PLATE-1"]


async def test_a_cursor_before_the_sku_prefix_still_finds_the_sku_equal_to_it(
    catalog: tuple[ProductCatalog, Any],
) -> None:
    reader, _ = catalog
    page, _ = await reader.search(q="cup-1", limit=10, after="CUP-0")
    assert [doc["_id"] for doc in page] == ["CUP-1"]


@pytest.mark.parametrize(("q", "after"), [(None, None), (None, "CUP-1"), ("cup", None),
                                          ("cup", "CUP-1"), ("Z", "A")])  # fmt: skip
async def test_every_search_query_walks_an_index(
    catalog: tuple[ProductCatalog, Any], q: str | None, after: str | None
) -> None:
    _, view = catalog
    for query, index in search_queries(q, after):
        found = view.find(query).sort("_id", 1).hint(index).limit(21)
        plan = (await found.explain())["queryPlanner"]
        stages: list[str] = []
        node = plan["winningPlan"]
        while isinstance(node, dict):
            stages.append(node.get("stage", ""))
            node = node.get("inputStage")
        assert "IXSCAN" in stages, (query, stages)
        assert "COLLSCAN" not in stages, (query, stages)


class DocumentsRead(monitoring.CommandListener):
    """How many documents each find and getMore brought back from the server."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if event.command_name in ("find", "getMore"):
            cursor = event.reply["cursor"]
            self.batches.append(len(cursor.get("firstBatch", cursor.get("nextBatch", []))))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_every_page_of_a_search_reads_at_most_a_page_of_documents(
    mongodb_server_url: str, mongodb_database: str, redis_url: str
) -> None:
    # A public route without a rate limit: a page after the first once read every product
    # whose name matched, however many. Names match "cup" here, skus mostly not.
    listener = DocumentsRead()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        mongodb_server_url, event_listeners=[listener]
    )
    redis = Redis.from_url(redis_url)
    view = mongo[mongodb_database][COLLECTION]
    await view.drop()
    await view.create_index(BY_SKU)
    await view.create_index(BY_NAME)
    by_name = {f"P-{n:03d}": f"Cup no. {n}" for n in range(120)}
    by_sku = {f"CUP-{n:03d}": f"Mug no. {n}" for n in range(30)}
    await view.insert_many([
        {"_id": sku, "name": name, "name_key": name.casefold(), "is_active": True}
        for sku, name in {**by_name, **by_sku, "Q-1": "Plate"}.items()
    ])  # fmt: skip
    reader = ProductCatalog(ReadStore(mongo[mongodb_database]), redis)
    limit, after, seen, pages = 7, None, list[str](), 0
    try:
        while True:
            listener.batches.clear()
            page, cursor = await reader.search(q="cup", limit=limit, after=after)
            pages += 1
            # one bounded query per field (sku, name), nothing read beyond a page and one
            assert len(listener.batches) <= 2, listener.batches
            assert all(batch <= limit + 1 for batch in listener.batches), listener.batches
            seen += [document["_id"] for document in page]
            if cursor is None:
                break
            after = page[-1]["_id"]
    finally:
        await view.drop()
        await redis.aclose()
        await mongo.close()
    assert seen == sorted({*by_name, *by_sku})  # in sku order, no duplicates, no gaps
    assert pages == -(-len(seen) // limit)
