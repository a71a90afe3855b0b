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
    the upsert tries to insert a second ``_id`` and the unique index refuses it: that refusal
    is the "already newer" answer, not an error.
    """
    try:
        result = await collection.update_one(
            {"_id": key, "version": {"$lt": version}},
            {"$set": {**fields, "version": version}},
            upsert=True,
        )
    except DuplicateKeyError:
        return False
    return result.modified_count == 1 or result.upserted_id is not None
