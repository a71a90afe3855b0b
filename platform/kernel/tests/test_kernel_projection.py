"""A version-guarded projection ends at the latest state whatever order events arrive in."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from pymongo import AsyncMongoClient

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
