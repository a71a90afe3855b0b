"""A rebuild while the projector keeps writing: whatever lands meanwhile, at any moment of the
rebuild, is in the view afterwards; damaged documents are repaired, stray ones removed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from shop_kernel.messaging.projection import ViewWrite, apply_newest
from shop_kernel.views import rebuild_view

Document = dict[str, Any]


class Shelves:
    """The write store of the test: shelves and their versions, changed as the test says."""

    def __init__(self, count: int) -> None:
        self.state: dict[str, Document] = {
            f"s-{n:04d}": {"_id": f"s-{n:04d}", "quantity": n, "version": 1} for n in range(count)
        }
        # Called while the rebuild reads: after the n-th document, and at the lookup of keys.
        self.while_reading: dict[int, Callable[[], Awaitable[None]]] = {}
        self.at_lookup: Callable[[], Awaitable[None]] | None = None

    async def count(self) -> int:
        return len(self.state)

    async def documents(self, keys: Sequence[str] | None = None) -> AsyncIterator[Document]:
        if keys is not None:
            if self.at_lookup is not None:
                await self.at_lookup()
            for key in keys:
                if key in self.state:
                    yield dict(self.state[key])
            return
        snapshot = [dict(doc) for doc in self.state.values()]  # a snapshot, as a query reads
        for n, document in enumerate(snapshot):
            yield document
            step = self.while_reading.get(n)
            if step is not None:
                await step()


@pytest.fixture
async def database(mongodb_server_url: str, mongodb_database: str) -> AsyncIterator[Any]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb_server_url)
    yield client[mongodb_database]
    await client.close()


async def project(view: Any, shelves: Shelves, key: str, quantity: int) -> None:
    """A change in the write store and its projection, as the worker makes them."""
    version = shelves.state[key]["version"] + 1 if key in shelves.state else 1
    shelves.state[key] = {"_id": key, "quantity": quantity, "version": version}
    await apply_newest(view, [ViewWrite(key, version, {"quantity": quantity})])


async def test_everything_projected_during_a_rebuild_is_in_the_view_after_it(
    database: Any,
) -> None:
    view = database[f"shelves_{uuid.uuid4().hex[:8]}"]
    shelves = Shelves(60)
    for document in shelves.state.values():
        await view.insert_one(dict(document))
    await view.update_one({"_id": "s-0005"}, {"$set": {"quantity": -1}})  # damaged
    await view.delete_one({"_id": "s-0006"})  # lost
    await view.insert_one({"_id": "stray", "quantity": 0, "version": 3})  # nobody's

    async def early() -> None:  # a document the rebuild has already written, and one to come
        await project(view, shelves, "s-0001", 101)
        await project(view, shelves, "s-0050", 150)

    async def late() -> None:  # after the last document was read
        await project(view, shelves, "s-0002", 102)
        await project(view, shelves, "born-late", 7)  # created after the rebuild's read

    async def at_the_very_end() -> None:  # while the rebuild sorts out what it did not write
        await project(view, shelves, "s-0003", 103)
        await project(view, shelves, "born-later", 8)

    shelves.while_reading = {10: early, 59: late}
    shelves.at_lookup = at_the_very_end
    await rebuild_view(database, view.name, shelves, batch_size=7)

    shown = {doc["_id"]: doc async for doc in view.find({})}
    assert shown == shelves.state  # every projection kept, damage repaired, the stray gone
    assert shown["s-0001"]["quantity"] == 101
    assert shown["s-0050"]["quantity"] == 150
    assert shown["born-later"]["version"] == 1


async def test_a_rebuild_of_an_intact_view_changes_nothing_a_reader_sees(database: Any) -> None:
    view = database[f"shelves_{uuid.uuid4().hex[:8]}"]
    shelves = Shelves(30)
    for document in shelves.state.values():
        await view.insert_one(dict(document))
    seen: list[int] = []

    def progress(done: int) -> None:
        seen.append(done)

    async def count() -> None:
        seen.append(-(await view.count_documents({})))

    shelves.while_reading = dict.fromkeys(range(0, 30, 5), count)
    assert await rebuild_view(database, view.name, shelves, batch_size=10, progress=progress) == 30
    assert [n for n in seen if n < 0] == [-30] * 6  # never a document missing meanwhile
    assert [n for n in seen if n > 0] == [10, 20, 30]


class Interleaved:
    """The read store as the rebuild sees it, where the projector gets in before every one of
    the rebuild's calls: a projection lands between any two steps of the rebuild."""

    def __init__(self, target: Any, between: Callable[[], Awaitable[None]]) -> None:
        self._target = target
        self._between = between

    def __getitem__(self, name: str) -> Interleaved:
        return Interleaved(self._target[name], self._between)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._target, name)
        if name in {"client", "admin"}:
            return Interleaved(found, self._between)
        if not callable(found) or name in {"find", "with_options"}:
            return found

        async def call(*args: Any, **kwargs: Any) -> Any:
            await self._between()
            return await found(*args, **kwargs)

        return call


async def test_a_projection_landing_between_any_two_steps_of_a_rebuild_is_kept(
    database: Any,
) -> None:
    view = database[f"shelves_{uuid.uuid4().hex[:8]}"]
    shelves = Shelves(40)
    for document in shelves.state.values():
        await view.insert_one(dict(document))
    steps = 0

    async def projector_gets_in() -> None:
        nonlocal steps
        steps += 1
        await project(view, shelves, f"s-{steps % 40:04d}", 1000 + steps)

    await rebuild_view(Interleaved(database, projector_gets_in), view.name, shelves, batch_size=9)
    assert steps >= 5
    shown = {doc["_id"]: doc async for doc in view.find({})}
    assert shown == shelves.state
