"""Version-guarded writes for read views: replays and out-of-order events leave them correct.

A projector is handed a batch of events (see :mod:`shop_kernel.messaging.delivery`) and
writes it with one ``bulk_write``: the read store's own rate of guarded upserts, not its rate
of round trips.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

_DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class ViewWrite:
    """A document's state at a version: ``fields`` replace what it holds if it is older."""

    key: str
    version: int
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Projected:
    newest: dict[str, int]  # per document, the newest version the batch brought
    applied: int  # documents changed or created (an older or equal state changes nothing)


async def apply_newest(
    collection: AsyncCollection[dict[str, Any]], writes: Iterable[ViewWrite]
) -> Projected:
    """Bring each document to the newest state the batch has of it, if it holds an older one.

    Within the batch only the newest version of each document is written: each is a whole
    state, so the older ones are superseded. A missing document is created. A document at
    that version or newer matches no filter, so the upsert tries to insert a second ``_id``
    and the unique index refuses it. The same refusal also answers the loser of two *first*
    writes racing each other (neither saw a document when it matched, both insert), and that
    loser may hold the newer version. So a refused upsert is tried once more as a plain
    guarded update: the document exists now, and its version alone decides.
    """
    newest: dict[str, ViewWrite] = {}
    for write in writes:
        held = newest.get(write.key)
        if held is None or held.version < write.version:
            newest[write.key] = write
    if not newest:
        return Projected({}, 0)
    chosen = list(newest.values())
    try:
        result = await collection.bulk_write(
            [_guarded(write, upsert=True) for write in chosen], ordered=False
        )
        applied = result.modified_count + result.upserted_count
    except BulkWriteError as exc:
        details: Mapping[str, Any] = exc.details
        errors: list[dict[str, Any]] = details.get("writeErrors", [])
        if any(error.get("code") != _DUPLICATE_KEY for error in errors):
            raise
        applied = int(details.get("nModified", 0)) + int(details.get("nUpserted", 0))
        again = [_guarded(chosen[int(error["index"])], upsert=False) for error in errors]
        applied += (await collection.bulk_write(again, ordered=False)).modified_count
    return Projected({key: write.version for key, write in newest.items()}, applied)


def _guarded(write: ViewWrite, *, upsert: bool) -> UpdateOne:
    return UpdateOne(
        {"_id": write.key, "version": {"$lt": write.version}},
        {"$set": {**write.fields, "version": write.version}},
        upsert=upsert,
    )
