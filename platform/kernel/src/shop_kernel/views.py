"""Read views that can be rebuilt from the write store at any time, while they serve.

A context declares each view with the class that reads its current state from PostgreSQL
(:class:`ViewSource`). A rebuild writes that state over the live collection document by
document, each write guarded by version like the projector's, and then removes what the
write store no longer has. Guarded writes commute: whatever the projector writes meanwhile,
in any interleaving, the newer version stays, so nothing projected during a rebuild is lost
(a rebuild into a shadow collection renamed over the live one dropped whatever was
projected between its last look at the live one and the rename). Readers see each document
either as it was or as rebuilt, never missing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo import ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

Document = dict[str, Any]
_DUPLICATE_KEY = 11000


class ViewSource(Protocol):
    """The write store's current state, as the view's documents (each with _id and version)."""

    async def count(self) -> int: ...

    def documents(self, keys: Sequence[str] | None = None) -> AsyncIterator[Document]:
        """Every document, or only those of ``keys`` (the ones that exist)."""
        ...


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
    """Rebuild ``collection`` from ``source`` in place; return how many documents it holds."""
    live = database[collection]
    rebuilt: set[Any] = set()
    batch: list[Document] = []
    async for document in source.documents():
        batch.append(document)
        if len(batch) >= batch_size:
            await write_if_not_older(live, batch)
            rebuilt.update(d["_id"] for d in batch)
            progress(len(rebuilt))
            batch = []
    if batch:
        await write_if_not_older(live, batch)
        rebuilt.update(d["_id"] for d in batch)
        progress(len(rebuilt))
    await _remove_what_the_source_lacks(live, source, rebuilt, batch_size)
    return await live.count_documents({})


async def write_if_not_older(
    collection: AsyncCollection[Document], documents: list[Document]
) -> None:
    """Replace each document unless the collection holds a newer version of it.

    At the same version the rebuilt one wins (it repairs a damaged document). A duplicate key
    means a first insert raced this one (or a newer version is held): the write is tried
    again as a plain guarded replace, which the version alone decides.
    """
    writes = [_guarded(document, upsert=True) for document in documents]
    try:
        await collection.bulk_write(writes, ordered=False)
    except BulkWriteError as exc:
        errors: list[dict[str, Any]] = exc.details.get("writeErrors", [])
        if any(error.get("code") != _DUPLICATE_KEY for error in errors):
            raise
        again = [_guarded(documents[int(error["index"])], upsert=False) for error in errors]
        await collection.bulk_write(again, ordered=False)


def _guarded(document: Document, *, upsert: bool) -> ReplaceOne[Document]:
    return ReplaceOne(
        {"_id": document["_id"], "version": {"$lte": document["version"]}}, document, upsert=upsert
    )


async def _remove_what_the_source_lacks(
    live: AsyncCollection[Document], source: ViewSource, rebuilt: set[Any], batch_size: int
) -> None:
    """Documents the rebuild did not write: the write store lost them (delete) or made them
    after the rebuild's read began (write them too; the projector may have been first)."""
    unseen = {
        document["_id"]: document.get("version")
        async for document in live.find({}, {"_id": True, "version": True})
        if document["_id"] not in rebuilt
    }
    keys = list(unseen)
    for start in range(0, len(keys), batch_size):
        chunk = keys[start : start + batch_size]
        found = [document async for document in source.documents([str(k) for k in chunk])]
        if found:
            await write_if_not_older(live, found)
        present = {document["_id"] for document in found}
        for key in chunk:
            if key not in present:
                # Only as it was seen: a document written since is not this rebuild's to judge.
                await live.delete_one({"_id": key, "version": unseen[key]})
