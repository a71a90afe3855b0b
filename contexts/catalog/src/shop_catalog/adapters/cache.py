"""The cache in front of the product view's hottest reads: products one by one, first pages
as the lists of skus they show.

A change retires only the product it changed. The projector, once the view holds the change,
marks that product's cached answer in Redis as older than the version it wrote, and appends
(sku, version) to a change feed (a Redis stream). Every API process holds answers of its own
in front of Redis and reads the feed at most every ``CHECK_S``, dropping what it lists: a
change is served stale at most that much longer than its projection takes.

A first page is kept as the skus it shows, apart from the products themselves, so what an
order does to stock (a reservation, a release: the product's stock figures only) retires
only the products it touched, never the pages; a change that may move a product into or out
of a list (a new product, a new name, price or activity) also retires every page. A rebuild
retires everything (:func:`shop_kernel.views.cache_generation_key`, the cache's epoch).

A reader fills Redis with what it read from the view only if Redis holds nothing of that
product at the same or a newer version, so an answer read just before a change never
overwrites the change's mark; and a process does not hold an answer older than a version the
feed has already announced. Answers are shared: readers must not change them.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shop_kernel.log import get_logger
from shop_kernel.views import cache_generation_key

log = get_logger(__name__)

Document = dict[str, Any]

COLLECTION = "product_catalog"
CACHE_TTL_S = 300
# How often a process reads the change feed (and the epochs), and how much it holds.
CHECK_S = 0.1
LOCAL_ENTRIES = 10_000
# The feed keeps about this many changes; a process that fell further behind drops all it holds.
FEED_LENGTH = 10_000

_PREFIX = f"shop:cache:{COLLECTION}"
_EPOCH = cache_generation_key(COLLECTION)  # a rebuild bumps it: every answer retires
_PAGES = f"{_PREFIX}:pages"  # bumped when what a list shows may have changed
_FEED = f"{_PREFIX}:changes"
_EMPTY = "0-0"  # the position before the feed's first entry

# KEYS: the product's entry. ARGV: its version, its document, the TTL.
_FILL = """
local held = tonumber(redis.call('HGET', KEYS[1], 'version'))
local version = tonumber(ARGV[1])
if held and held > version then
  return 0
end
if held == version and redis.call('HEXISTS', KEYS[1], 'doc') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'doc', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: the epoch, the feed, the pages' generation. ARGV: the TTL, the feed's length, whether
# pages retire too (1 or 0), the entries' prefix, then (sku, version) pairs.
_RETIRE = """
local epoch = redis.call('GET', KEYS[1]) or '0'
for i = 5, #ARGV, 2 do
  local entry = ARGV[4] .. epoch .. ':product:' .. ARGV[i]
  local version = tonumber(ARGV[i + 1])
  local held = tonumber(redis.call('HGET', entry, 'version'))
  if not held or held < version then
    redis.call('HDEL', entry, 'doc')
    redis.call('HSET', entry, 'version', ARGV[i + 1])
    redis.call('EXPIRE', entry, ARGV[1])
  end
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'sku', ARGV[i], 'version', ARGV[i + 1])
end
if ARGV[3] == '1' then
  redis.call('INCR', KEYS[3])
end
return 1
"""


class CatalogCache:
    """Cached products and first pages, for the view's readers (one per process)."""

    def __init__(self, redis: Redis, *, local_entries: int = LOCAL_ENTRIES) -> None:
        self._redis = redis
        self._fill = redis.register_script(_FILL)
        self._local_entries = local_entries
        self._products: OrderedDict[str, Document] = OrderedDict()
        self._pages: OrderedDict[str, tuple[list[str], str | None]] = OrderedDict()
        # The newest version the feed announced per sku (answers older are never held).
        self._announced: OrderedDict[str, int] = OrderedDict()
        self._checked_at = float("-inf")
        self._usable = False
        self._epochs: tuple[int, int] | None = None  # (epoch, pages' generation)
        self._seen: str | None = None  # the last feed entry read

    async def product(self, sku: str) -> Document | None:
        """The cached answer for ``sku``, from this process or Redis; None when not cached."""
        if not await self._caught_up():
            return None
        held = self._products.get(sku)
        if held is not None:
            self._products.move_to_end(sku)
            return held
        try:
            raw = await self._redis.hget(self._entry(sku), "doc")  # pyright: ignore[reportUnknownMemberType, reportGeneralTypeIssues]
        except RedisError:
            return None
        if raw is None:
            return None
        document: Document = msgspec.json.decode(raw)
        self._hold(document)
        return document

    async def products(self, skus: list[str]) -> dict[str, Document]:
        """The cached answers of those of ``skus`` that are cached (one round trip at most)."""
        if not await self._caught_up():
            return {}
        found = {sku: held for sku in skus if (held := self._products.get(sku)) is not None}
        missing = [sku for sku in skus if sku not in found]
        if not missing:
            return found
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for sku in missing:
                    pipe.hget(self._entry(sku), "doc")  # pyright: ignore[reportUnknownMemberType]
                raws: list[bytes | None] = await pipe.execute()
        except RedisError:
            return found
        for raw in raws:
            if raw is not None:
                document: Document = msgspec.json.decode(raw)
                self._hold(document)
                found[document["_id"]] = document
        return found

    async def keep(self, documents: Iterable[Document]) -> None:
        """Hold what was read from the view, and offer it to Redis (which takes it only if it
        holds nothing of that product as new)."""
        if not self._usable:
            return
        offered = [document for document in documents if self._hold(document)]
        if not offered:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for document in offered:
                    await self._fill(
                        keys=[self._entry(document["_id"])],
                        args=[
                            document.get("version", 0),
                            msgspec.json.encode(document),
                            CACHE_TTL_S,
                        ],
                        client=pipe,
                    )
                await pipe.execute()
        except RedisError as exc:  # a read served without caching is fine
            log.debug("catalog cache not filled", error=repr(exc))

    async def page(self, key: str) -> tuple[list[str], str | None] | None:
        """The skus a first page shows, and its next cursor; None when not cached."""
        if not await self._caught_up():
            return None
        held = self._pages.get(key)
        if held is not None:
            self._pages.move_to_end(key)
            return held
        try:
            raw = await self._redis.get(self._page_entry(key))
        except RedisError:
            return None
        if raw is None:
            return None
        skus, next_cursor = msgspec.json.decode(raw, type=tuple[list[str], str | None])
        self._hold_page(key, skus, next_cursor)
        return skus, next_cursor

    async def keep_page(self, key: str, skus: list[str], next_cursor: str | None) -> None:
        if not self._usable:
            return
        entry = self._page_entry(key)  # the generation the page was read under
        self._hold_page(key, skus, next_cursor)
        try:
            await self._redis.set(entry, msgspec.json.encode((skus, next_cursor)), ex=CACHE_TTL_S)
        except RedisError as exc:
            log.debug("catalog cache not filled", error=repr(exc))

    def _hold(self, document: Document) -> bool:
        """Hold ``document`` unless the feed already announced a newer version of it."""
        sku, version = document["_id"], int(document.get("version", 0))
        if version < self._announced.get(sku, 0):
            return False
        self._products[sku] = document
        self._products.move_to_end(sku)
        while len(self._products) > self._local_entries:
            self._products.popitem(last=False)
        return True

    def _hold_page(self, key: str, skus: list[str], next_cursor: str | None) -> None:
        self._pages[key] = (skus, next_cursor)
        self._pages.move_to_end(key)
        while len(self._pages) > self._local_entries:
            self._pages.popitem(last=False)

    def _entry(self, sku: str) -> str:
        epoch = self._epochs[0] if self._epochs else 0
        return f"{_PREFIX}:{epoch}:product:{sku}"

    def _page_entry(self, key: str) -> str:
        epoch, pages = self._epochs or (0, 0)
        return f"{_PREFIX}:{epoch}:{pages}:page:{key}"

    async def _caught_up(self) -> bool:
        """Read the feed and the epochs if the last look is older than ``CHECK_S``; False
        while Redis cannot say (then nothing is cached, nor served from the cache)."""
        now = time.monotonic()
        if now - self._checked_at < CHECK_S:
            return self._usable
        self._checked_at = now
        fresh = self._seen is None
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(_EPOCH)
                pipe.get(_PAGES)
                pipe.xrange(_FEED, count=1)
                if self._seen is None:
                    pipe.xrevrange(_FEED, count=1)
                else:
                    pipe.xrange(_FEED, min=f"({self._seen}", count=FEED_LENGTH)
                epoch, pages, first, news = await pipe.execute()
        except RedisError as exc:
            if self._usable:
                log.warning("catalog cache unavailable; reading the view", error=repr(exc))
            self._forget_everything()
            self._epochs = self._seen = None  # what came meanwhile is unknown
            self._usable = False
            return False
        self._catch_up(int(epoch or 0), int(pages or 0), first, news, fresh=fresh)
        self._usable = True
        return True

    def _catch_up(
        self, epoch: int, pages: int, first: list[Any], news: list[Any], *, fresh: bool
    ) -> None:
        """Apply a look at Redis: ``first`` is the feed's oldest entry, ``news`` its entries
        after the last seen (or, on a ``fresh`` start, its newest)."""
        # Entries between the last seen and the oldest one kept may be gone (trimmed); an
        # empty feed at the last look lost nothing unless the feed filled up since.
        behind = len(news) >= FEED_LENGTH or (
            self._seen not in (None, _EMPTY) and bool(first) and _after(first[0][0], self._seen)
        )
        if self._epochs is None or self._epochs[0] != epoch or behind:
            self._forget_everything()  # a rebuild, or changes this process may have missed
        elif self._epochs[1] != pages:
            self._pages.clear()
        self._epochs = (epoch, pages)
        if fresh:  # nothing is held from before this look
            self._seen = news[0][0].decode() if news else _EMPTY
            return
        for entry_id, fields in news:
            sku, version = fields[b"sku"].decode(), int(fields[b"version"])
            held = self._products.get(sku)
            if held is not None and int(held.get("version", 0)) <= version:
                del self._products[sku]
            self._announced[sku] = max(version, self._announced.get(sku, 0))
            self._announced.move_to_end(sku)
            self._seen = entry_id.decode()
        while len(self._announced) > FEED_LENGTH:
            self._announced.popitem(last=False)

    def _forget_everything(self) -> None:
        self._products.clear()
        self._pages.clear()
        self._announced.clear()


def _after(entry_id: bytes, seen: str) -> bool:
    """Whether the feed's oldest entry came after ``seen``: what lay between may be gone."""
    first = tuple(int(part) for part in entry_id.decode().split("-"))
    last = tuple(int(part) for part in seen.split("-"))
    return first > last


class CatalogChanges:
    """The projector's side: retire what a batch of changes made stale."""

    def __init__(self, redis: Redis) -> None:
        self._retire = redis.register_script(_RETIRE)

    async def retire(self, versions: Mapping[str, int], *, lists_too: bool) -> None:
        """Mark each product's cached answer older than ``versions[sku]``, announce it in
        the feed, and retire every page if ``lists_too``. One round trip."""
        if not versions and not lists_too:
            return
        pairs = [part for sku, version in sorted(versions.items()) for part in (sku, version)]
        await self._retire(
            keys=[_EPOCH, _FEED, _PAGES],
            args=[CACHE_TTL_S, FEED_LENGTH, 1 if lists_too else 0, f"{_PREFIX}:", *pairs],
        )
