"""Version-guarded writes for read views: replays and out-of-order events leave them correct."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError


async def apply_if_newer(
    collection: AsyncCollection[dict[str, Any]],
    key: str,
    version: int,
    fields: Mapping[str, Any],
) -> bool:
    """Set ``fields`` on document ``key`` only if it holds an older version; return if applied.

    A missing document is created. A document at ``version`` or newer matches no filter, so
    the upsert tries to insert a second ``_id`` and the unique index refuses it. The same
    refusal also answers the loser of two *first* writes racing each other (neither saw a
    document when it matched, both insert), and that loser may hold the newer version. So a
    refused upsert is tried once more as a plain guarded update: the document exists now,
    and its version alone decides.
    """
    guard = {"_id": key, "version": {"$lt": version}}
    change = {"$set": {**fields, "version": version}}
    try:
        result = await collection.update_one(guard, change, upsert=True)
    except DuplicateKeyError:
        result = await collection.update_one(guard, change)
        return result.modified_count == 1
    return result.modified_count == 1 or result.upserted_id is not None
