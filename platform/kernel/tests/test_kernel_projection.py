"""A version-guarded projection ends at the latest state whatever order events arrive in."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from shop_kernel.messaging.projection import apply_if_newer


@pytest.fixture
async def collection(mongodb_server_url: str, mongodb_database: str) -> Any:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_server_url)
    yield client[mongodb_database][f"view_{uuid.uuid4().hex[:8]}"]
    await client.close()


@pytest.mark.parametrize(
    "order",
    [[1, 2, 3], [3, 2, 1], [2, 3, 1, 3, 2], [1, 1, 3, 3, 2, 2]],
    ids=["in-order", "reversed", "shuffled-with-duplicates", "duplicates-first"],
)
async def test_out_of_order_and_duplicate_events_leave_the_latest_state(
    collection: Any, order: list[int]
) -> None:
    applied = [
        await apply_if_newer(collection, "shelf-1", version, {"quantity": version * 10})
        for version in order
    ]
    document = await collection.find_one({"_id": "shelf-1"})
    assert document == {"_id": "shelf-1", "quantity": 30, "version": 3}
    # Each version is applied at most once, and nothing older than what was held.
    assert sum(applied) == len({v for i, v in enumerate(order) if v > max(order[:i], default=0)})


async def test_every_permutation_of_three_versions_converges(collection: Any) -> None:
    for n, order in enumerate(itertools.permutations([1, 2, 3])):
        key = f"shelf-{n}"
        for version in order:
            await apply_if_newer(collection, key, version, {"quantity": version})
        assert (await collection.find_one({"_id": key}))["version"] == 3


class LosesTheFirstInsert:
    """The read store's collection, where another writer's first insert of the same document
    (an older version) lands between this writer's match and its insert: exactly what the
    server answers then, a duplicate key. Everything else goes to the real collection."""

    def __init__(self, collection: Any, competitor: dict[str, Any]) -> None:
        self._collection = collection
        self._competitor = competitor
        self.raced = False

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("upsert") and not self.raced:
            self.raced = True
            await self._collection.insert_one(self._competitor)
            raise DuplicateKeyError("E11000 duplicate key error collection: _id_ dup key")
        return await self._collection.update_one(*args, **kwargs)


async def test_the_newer_of_two_racing_first_writes_wins(collection: Any) -> None:
    racing = LosesTheFirstInsert(collection, {"_id": "shelf-r", "quantity": 10, "version": 1})
    applied = await apply_if_newer(racing, "shelf-r", 2, {"quantity": 20})
    assert racing.raced
    assert applied
    assert await collection.find_one({"_id": "shelf-r"}) == {
        "_id": "shelf-r", "quantity": 20, "version": 2,
    }  # fmt: skip


async def test_an_older_first_write_losing_the_race_changes_nothing(collection: Any) -> None:
    racing = LosesTheFirstInsert(collection, {"_id": "shelf-o", "quantity": 30, "version": 3})
    applied = await apply_if_newer(racing, "shelf-o", 2, {"quantity": 20})
    assert not applied
    assert (await collection.find_one({"_id": "shelf-o"}))["version"] == 3
