"""The ``product_catalog`` read view, and the cache in front of its hottest reads.

The projector writes a product's newest state (newest ``aggregate_version`` wins) and then
bumps the cache's generation, which retires every cached answer (single products and first
pages alike): a change is served stale at most ``GENERATION_CHECK_S`` longer than the
projection takes. Cached answers are shared: readers must not change them.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import msgspec
from beanie import Document
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_catalog.adapters.sql import product_from_row, products
from shop_catalog.adapters.translations import product_snapshot
from shop_catalog_contract import ProductEvent, ProductSnapshot, VersionedProduct
from shop_kernel.log import get_logger
from shop_kernel.messaging.projection import apply_if_newer
from shop_kernel.mongo import ReadStore
from shop_kernel.pages import keyset_page
from shop_kernel.views import cache_generation_key

log = get_logger(__name__)

COLLECTION = "product_catalog"
CACHE_TTL_S = 300
# How often a process asks Redis for the cache's generation, and how many answers it holds.
GENERATION_CHECK_S = 0.1
LOCAL_ENTRIES = 10_000
_CACHE = f"shop:cache:{COLLECTION}"
_GENERATION = cache_generation_key(COLLECTION)
# The view's indexes: active products by sku, and by name then sku.
Index = list[tuple[str, int]]
BY_SKU: Index = [("is_active", ASCENDING), ("_id", ASCENDING)]
BY_NAME: Index = [("is_active", ASCENDING), ("name_key", ASCENDING), ("_id", ASCENDING)]


class ProductCatalogEntry(Document):
    """The view's document (declared for its indexes; read and written through ReadStore):
    the product's snapshot as it is, its sku as ``_id``, and the key names are searched on."""

    id: str  # pyright: ignore[reportIncompatibleVariableOverride, reportGeneralTypeIssues] - the sku
    name: str
    name_key: str
    description: str
    price: dict[str, Any]
    stock: dict[str, Any]
    is_active: bool
    version: int

    class Settings:
        name = COLLECTION
        indexes: ClassVar[list[IndexModel]] = [IndexModel(BY_SKU), IndexModel(BY_NAME)]


def _prefix(text: str) -> dict[str, str]:
    """The index range of the strings starting with ``text`` (an anchored regex is not
    turned into index bounds by every MongoDB-wire server; a range always is)."""
    last = text[-1]
    if ord(last) == sys.maxunicode:
        return {"$gte": text, "$lte": text + chr(sys.maxunicode) * 32}
    return {"$gte": text, "$lt": text[:-1] + chr(ord(last) + 1)}


def search_queries(q: str | None, after: str | None) -> list[tuple[dict[str, Any], Index]]:
    """The view's queries for active products after ``after`` whose sku or name starts with
    ``q``, each with the index it walks: one index range per field, merged by the caller,
    and each read in sku order up to the page size, on every page. Not an ``$or`` of
    anchored regexes, which a server may answer by scanning the whole collection. The name's
    query bounds ``_id`` by the cursor inside the name index; it is hinted, since a server may
    answer that second range by scanning the collection (the test server does)."""
    beyond = {} if after is None else {"_id": {"$gt": after}}
    if not q:
        return [({"is_active": True, **beyond}, BY_SKU)]
    sku = _prefix(q.upper())
    if after is not None and after >= sku["$gte"]:
        sku = {"$gt": after, **{k: v for k, v in sku.items() if k != "$gte"}}
    return [
        ({"is_active": True, "_id": sku}, BY_SKU),
        ({"is_active": True, "name_key": _prefix(q.casefold()), **beyond}, BY_NAME),
    ]


def document(product: ProductSnapshot) -> dict[str, Any]:
    """The view's document of a product: its snapshot as it is (its sku as ``_id``), and the
    key names are searched on."""
    fields = msgspec.to_builtins(product)
    del fields["sku"]
    return {**fields, "name_key": product.name.casefold()}


def versioned(entry: dict[str, Any]) -> VersionedProduct:
    """A product as the view holds it, at its version."""
    if "stock" not in entry:  # written by the release before (stock flat) and not since
        on_hand, reserved = entry["on_hand"], entry["reserved"]
        entry = {**entry, "stock": {"on_hand": on_hand, "reserved": reserved,
                                    "available": on_hand - reserved}}  # fmt: skip
    return msgspec.convert({**entry, "sku": entry["_id"]}, VersionedProduct)


class ProductCache:
    """Cached reads under a generation number that every projected change bumps.

    A reader notes the generation before it reads the view and stores what it read under
    that generation: a change projected meanwhile has moved on to the next one, so a stale
    read is not served once this process has seen the new generation.

    Two levels: this process's own (the hottest answers, no round trip at all) in front of
    Redis (shared by every API replica). The process looks the generation up in Redis at
    most every ``GENERATION_CHECK_S``, so a change may be served stale that much longer than
    the projection takes; the views promise visibility within 1 s.
    """

    def __init__(self, redis: Redis, *, local_entries: int = LOCAL_ENTRIES) -> None:
        self._redis = redis
        self._local: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._local_entries = local_entries
        self._generation: tuple[float, int] | None = None  # (looked up at, value)

    async def generation(self) -> int | None:
        """The current generation; None when Redis cannot say (then nothing is cached)."""
        now = time.monotonic()
        if self._generation is not None and now - self._generation[0] < GENERATION_CHECK_S:
            return self._generation[1]
        try:
            raw = await self._redis.get(_GENERATION)
        except RedisError as exc:
            log.warning("catalog cache unavailable; reading the view", error=repr(exc))
            self._generation = None
            self._local.clear()
            return None
        generation = int(raw) if raw is not None else 0
        if self._generation is not None and generation != self._generation[1]:
            self._local.clear()  # everything held is of an older generation
        self._generation = (now, generation)
        return generation

    async def get(self, generation: int | None, key: str) -> Any | None:
        if generation is None:
            return None
        held = self._local.get(key)
        if held is not None and held[0] == generation:
            self._local.move_to_end(key)
            return held[1]
        try:
            raw = await self._redis.get(f"{_CACHE}:{generation}:{key}")
        except RedisError:
            return None
        if raw is None:
            return None
        value = msgspec.json.decode(raw)
        self._hold(generation, key, value)
        return value

    async def keep(self, generation: int | None, key: str, value: Any) -> None:
        if generation is None:
            return
        self._hold(generation, key, value)
        with contextlib.suppress(RedisError):  # a read served without caching is fine
            await self._set(generation, key, value)

    def _hold(self, generation: int, key: str, value: Any) -> None:
        self._local[key] = (generation, value)
        self._local.move_to_end(key)
        while len(self._local) > self._local_entries:
            self._local.popitem(last=False)

    async def _set(self, generation: int, key: str, value: Any) -> None:
        await self._redis.set(
            f"{_CACHE}:{generation}:{key}", msgspec.json.encode(value), ex=CACHE_TTL_S
        )

    async def forget_everything(self) -> None:
        await self._redis.incr(_GENERATION)


class ProductCatalogProjector:
    def __init__(self, store: ReadStore, redis: Redis) -> None:
        self._view: AsyncCollection[dict[str, Any]] = store.collection(COLLECTION)
        self._cache = ProductCache(redis)

    async def __call__(self, event: ProductEvent) -> None:
        product = event.product
        await apply_if_newer(self._view, product.sku, event.aggregate_version, document(product))
        # Also when the event was not newer: a redelivery after a failed bump must still bump.
        await self._cache.forget_everything()


class ProductCatalogSource:
    """The products as the write store knows them, as the view's documents."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            result = await conn.execute(select(func.count()).select_from(products))
            return int(result.scalar_one())

    async def documents(self, keys: Sequence[str] | None = None) -> AsyncIterator[dict[str, Any]]:
        query = select(products)
        if keys is not None:
            query = query.where(products.c.sku.in_(keys))
        async with self._engine.connect() as conn:
            async for row in await conn.stream(query):
                product = product_snapshot(product_from_row(row))
                yield {"_id": product.sku, **document(product), "version": row.version}


class ProductCatalog:
    """Queries of the view, through the cache for single products and first pages."""

    def __init__(self, store: ReadStore, redis: Redis) -> None:
        self._view: AsyncCollection[dict[str, Any]] = store.collection(COLLECTION)
        self._cache = ProductCache(redis)

    async def get(self, sku: str) -> dict[str, Any] | None:
        generation = await self._cache.generation()
        cached = await self._cache.get(generation, f"product:{sku}")
        if cached is not None:
            return cached
        document = await self._view.find_one({"_id": sku})
        if document is not None:
            await self._cache.keep(generation, f"product:{sku}", document)
        return document

    async def search(
        self, *, q: str | None, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        key = f"page:{limit}:{q or ''}"
        generation = await self._cache.generation()
        if after is None and (cached := await self._cache.get(generation, key)) is not None:
            return cached["items"], cached["next"]
        read = await self._first(limit + 1, q=q, after=after)
        page, next_cursor = keyset_page(read, limit, key=lambda doc: doc["_id"])
        if after is None:
            await self._cache.keep(generation, key, {"items": page, "next": next_cursor})
        return page, next_cursor

    async def _first(self, count: int, *, q: str | None, after: str | None) -> list[dict[str, Any]]:
        """The first ``count`` products after ``after``: each query reads at most ``count``."""
        found: dict[str, dict[str, Any]] = {}
        for query, index in search_queries(q, after):
            cursor = self._view.find(query).sort("_id", ASCENDING).hint(index).limit(count)
            async for document in cursor:
                found[document["_id"]] = document
        return [found[sku] for sku in sorted(found)[:count]]
