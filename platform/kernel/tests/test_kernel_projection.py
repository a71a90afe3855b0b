"""A version-guarded projection ends at the latest state whatever order events arrive in, a
batch at a time or one by one."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError

from shop_kernel.messaging.projection import ViewWrite, apply_newest


@pytest.fixture
async def collection(mongodb_server_url: str, mongodb_database: str) -> Any:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_server_url)
    yield client[mongodb_database][f"view_{uuid.uuid4().hex[:8]}"]
    await client.close()


def shelf(version: int, key: str = "shelf-1") -> ViewWrite:
    return ViewWrite(key, version, {"quantity": version * 10})


@pytest.mark.parametrize(
    "order",
    [[1, 2, 3], [3, 2, 1], [2, 3, 1, 3, 2], [1, 1, 3, 3, 2, 2]],
    ids=["in-order", "reversed", "shuffled-with-duplicates", "duplicates-first"],
)
async def test_out_of_order_and_duplicate_events_leave_the_latest_state(
    collection: Any, order: list[int]
) -> None:
    applied = [(await apply_newest(collection, [shelf(version)])).applied for version in order]
    document = await collection.find_one({"_id": "shelf-1"})
    assert document == {"_id": "shelf-1", "quantity": 30, "version": 3}
    # Each version is applied at most once, and nothing older than what was held.
    assert sum(applied) == len({v for i, v in enumerate(order) if v > max(order[:i], default=0)})


async def test_every_permutation_of_three_versions_converges(collection: Any) -> None:
    for n, order in enumerate(itertools.permutations([1, 2, 3])):
        key = f"shelf-{n}"
        for version in order:
            await apply_newest(collection, [shelf(version, key)])
        assert (await collection.find_one({"_id": key}))["version"] == 3


async def test_a_batch_writes_the_newest_state_of_each_document_once(collection: Any) -> None:
    await apply_newest(collection, [shelf(4, "held")])
    batch = [shelf(2, "a"), shelf(5, "b"), shelf(3, "a"), shelf(1, "a"), shelf(2, "held")]
    projected = await apply_newest(collection, batch)
    assert projected.newest == {"a": 3, "b": 5, "held": 2}
    assert projected.applied == 2  # a and b; the view's held is newer than the batch's
    found = {doc["_id"]: doc["version"] async for doc in collection.find({})}
    assert found == {"a": 3, "b": 5, "held": 4}


async def test_batches_that_overlap_in_any_order_converge(collection: Any) -> None:
    first = [shelf(1, "x"), shelf(3, "y"), shelf(2, "x")]
    second = [shelf(2, "y"), shelf(3, "x"), shelf(1, "z")]
    for batches in ([first, second], [second, first]):
        await collection.delete_many({})
        for batch in batches:
            await apply_newest(collection, batch)
        found = {doc["_id"]: doc["quantity"] async for doc in collection.find({})}
        assert found == {"x": 30, "y": 30, "z": 10}


class LosesTheFirstInsert:
    """The read store's collection, where another writer's first insert of the same document
    lands between this writer's match and its insert: exactly what the server answers then,
    a duplicate key for that write of the bulk. Everything else goes to the real collection."""

    def __init__(self, collection: Any, competitor: dict[str, Any]) -> None:
        self._collection = collection
        self._competitor = competitor
        self.raced = False

    async def bulk_write(self, requests: list[Any], **kwargs: Any) -> Any:
        if not self.raced:
            self.raced = True
            await self._collection.insert_one(self._competitor)
            others = [r for r in requests if r._filter["_id"] != self._competitor["_id"]]
            result = await self._collection.bulk_write(others, **kwargs) if others else None
            index = next(
                i for i, r in enumerate(requests) if r._filter["_id"] == self._competitor["_id"]
            )
            raise BulkWriteError({
                "writeErrors": [{"index": index, "code": 11000, "errmsg": "E11000 duplicate key"}],
                "nModified": result.modified_count if result else 0,
                "nUpserted": result.upserted_count if result else 0,
            })  # fmt: skip
        return await self._collection.bulk_write(requests, **kwargs)


async def test_the_newer_of_two_racing_first_writes_wins(collection: Any) -> None:
    racing = LosesTheFirstInsert(collection, {"_id": "shelf-r", "quantity": 10, "version": 1})
    projected = await apply_newest(racing, [shelf(2, "shelf-r"), shelf(1, "other")])
    assert racing.raced
    assert projected.applied == 2
    assert await collection.find_one({"_id": "shelf-r"}) == {
        "_id": "shelf-r", "quantity": 20, "version": 2,
    }  # fmt: skip
    assert (await collection.find_one({"_id": "other"}))["version"] == 1


async def test_an_older_first_write_losing_the_race_changes_nothing(collection: Any) -> None:
    racing = LosesTheFirstInsert(collection, {"_id": "shelf-o", "quantity": 30, "version": 3})
    projected = await apply_newest(racing, [shelf(2, "shelf-o")])
    assert projected.applied == 0
    assert (await collection.find_one({"_id": "shelf-o"}))["version"] == 3


class RefusesOne:
    """A collection whose server refuses a write for another reason than a duplicate key."""

    async def bulk_write(self, requests: list[Any], **_: Any) -> Any:
        raise BulkWriteError({"writeErrors": [{"index": 0, "code": 2, "errmsg": "BadValue"}]})


async def test_an_error_other_than_a_duplicate_key_is_raised() -> None:
    with pytest.raises(BulkWriteError):
        await apply_newest(RefusesOne(), [shelf(1)])  # pyright: ignore[reportArgumentType]
