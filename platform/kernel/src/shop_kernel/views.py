"""Read views that can be rebuilt from the write store at any time.

A context declares each view with the class that reads its current state from PostgreSQL
(:class:`ViewSource`). A rebuild fills a shadow collection, folds in whatever the live
projector wrote meanwhile (newer versions win), and swaps the shadow in with one atomic
rename, so readers see the old view until the new one is complete.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo import ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

Document = dict[str, Any]


class ViewSource(Protocol):
    """The write store's current state, as the view's documents (each with _id and version)."""

    async def count(self) -> int: ...

    def documents(self) -> AsyncIterator[Document]: ...


def cache_generation_key(collection: str) -> str:
    """The Redis counter that caches of ``collection`` key their entries under.

    Whatever changes the view bumps it (a projector after each event, a rebuild after the
    swap), so nothing cached before the change is served after it.
    """
    return f"shop:cache:{collection}:generation"


@dataclass(frozen=True)
class ReadView:
    name: str
    collection: str
    source: type[Any]  # built by the container; its instances are ViewSources


async def rebuild_view(
    database: AsyncDatabase[Document],
    collection: str,
    source: ViewSource,
    *,
    batch_size: int = 500,
    progress: Callable[[int], None] = lambda _done: None,
) -> int:
    """Rebuild ``collection`` from ``source``; return how many documents the new view holds."""
    live = database[collection]
    shadow_name = f"{collection}__rebuild_{uuid.uuid4().hex[:8]}"
    shadow = database[shadow_name]
    done = 0
    try:
        batch: list[Document] = []
        async for document in source.documents():
            batch.append(document)
            if len(batch) >= batch_size:
                await shadow.insert_many(batch, ordered=False)
                done += len(batch)
                progress(done)
                batch = []
        if batch:
            await shadow.insert_many(batch, ordered=False)
            done += len(batch)
            progress(done)
        await _copy_indexes(live, shadow)
        await _fold_in_newer(live, shadow)
        await database.client.admin.command(
            "renameCollection",
            f"{database.name}.{shadow_name}",
            to=f"{database.name}.{collection}",
            dropTarget=True,
        )
    except BaseException:
        await database.drop_collection(shadow_name)
        raise
    return await live.count_documents({})


async def _copy_indexes(live: AsyncCollection[Document], shadow: AsyncCollection[Document]) -> None:
    for name, spec in (await live.index_information()).items():
        if name == "_id_":
            continue
        options = {
            k: v for k, v in spec.items() if k in {"unique", "sparse", "partialFilterExpression"}
        }
        await shadow.create_index(spec["key"], name=name, **options)


async def _fold_in_newer(
    live: AsyncCollection[Document], shadow: AsyncCollection[Document]
) -> None:
    """Documents the projector updated while the shadow was filled keep their newer version."""
    writes: list[ReplaceOne[Document]] = []
    async for document in live.find({}):
        writes.append(
            ReplaceOne(
                {"_id": document["_id"], "version": {"$lt": document.get("version", 0)}},
                document,
                upsert=True,
            )
        )
        if len(writes) >= 500:
            await _apply(shadow, writes)
            writes = []
    if writes:
        await _apply(shadow, writes)


async def _apply(shadow: AsyncCollection[Document], writes: list[ReplaceOne[Document]]) -> None:
    try:
        await shadow.bulk_write(writes, ordered=False)
    except BulkWriteError as exc:
        # A duplicate _id means the shadow already holds that document at the same or a newer
        # version: exactly the case to leave alone. Anything else is a real failure.
        errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
        if any(error.get("code") != 11000 for error in errors):
            raise
