"""The ``product_catalog`` read view: its documents, projector, rebuild source and queries.

The projector writes each product's newest state (newest ``aggregate_version`` wins), a batch
of events at a time, and then retires what it made stale in the cache in front of the
view's hottest reads (:mod:`shop_catalog.adapters.cache`): the products it changed, and the
cached pages only when a change may move a product into or out of a list.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import msgspec
from beanie import Document
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_catalog.adapters.cache import COLLECTION, CatalogCache, CatalogChanges
from shop_catalog.adapters.sql import product_from_row, products
from shop_catalog.adapters.translations import product_snapshot
from shop_catalog_contract import (
    ProductEvent,
    ProductSnapshot,
    StockAdjusted,
    StockHeld,
    VersionedProduct,
)
from shop_kernel.messaging.projection import ViewWrite, apply_newest
from shop_kernel.mongo import ReadStore
from shop_kernel.pages import keyset_page

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


class ProductCatalogProjector:
    def __init__(self, store: ReadStore, redis: Redis) -> None:
        self._view: AsyncCollection[dict[str, Any]] = store.collection(COLLECTION)
        self._changes = CatalogChanges(redis)

    async def __call__(self, events: Sequence[ProductEvent]) -> None:
        writes = [
            ViewWrite(event.product.sku, event.aggregate_version, document(event.product))
            for event in events
        ]
        projected = await apply_newest(self._view, writes)
        # Also what was not newer: a redelivery after a failed retirement must still retire.
        await self._changes.retire(
            projected.newest, lists_too=any(not _stock_only(event) for event in events)
        )


def _stock_only(event: ProductEvent) -> bool:
    """Whether the change is to the product's stock figures alone, which move no product
    into or out of a list."""
    return isinstance(event, StockHeld | StockAdjusted)


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
        self._cache = CatalogCache(redis)

    async def get(self, sku: str) -> dict[str, Any] | None:
        cached = await self._cache.product(sku)
        if cached is not None:
            return cached
        document = await self._view.find_one({"_id": sku})
        if document is not None:
            await self._cache.keep([document])
        return document

    async def search(
        self, *, q: str | None, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of active products; a first page's skus come from the cache, and its
        products from the cache as well (each as current as its own latest change)."""
        key = f"{limit}:{q or ''}"
        cached = await self._cache.page(key) if after is None else None
        if cached is not None:
            skus, next_cursor = cached
            found = await self._cache.products(skus)
            missing = [sku for sku in skus if sku not in found]
            if missing:
                read = [doc async for doc in self._view.find({"_id": {"$in": missing}})]
                await self._cache.keep(read)
                found.update((doc["_id"], doc) for doc in read)
            # A product that left the list since stays out until the page is read anew.
            return [found[sku] for sku in skus if found.get(sku, {}).get("is_active")], next_cursor
        read = await self._first(limit + 1, q=q, after=after)
        page, next_cursor = keyset_page(read, limit, key=lambda doc: doc["_id"])
        if after is None:
            await self._cache.keep(page)
            await self._cache.keep_page(key, [doc["_id"] for doc in page], next_cursor)
        return page, next_cursor

    async def _first(self, count: int, *, q: str | None, after: str | None) -> list[dict[str, Any]]:
        """The first ``count`` products after ``after``: each query reads at most ``count``."""
        found: dict[str, dict[str, Any]] = {}
        for query, index in search_queries(q, after):
            cursor = self._view.find(query).sort("_id", ASCENDING).hint(index).limit(count)
            async for document in cursor:
                found[document["_id"]] = document
        return [found[sku] for sku in sorted(found)[:count]]
