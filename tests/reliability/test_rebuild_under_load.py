"""`shop projections rebuild` while customers check out: nothing projected meanwhile is lost.

The app and the worker run on stores of this test's own; checkouts (create, add, confirm, and
now and then cancel) go on while every view is rebuilt twice. Once the load has stopped and
the backlog is projected, every view equals what a rebuild from the write store makes.
"""

from __future__ import annotations

import asyncio
import random
import uuid

import httpx
import pytest

from shop_devkit.app_plugin import (
    OwnRedis,
    eventually,
    new_admin,
    new_customer,
    views_equal_rebuilds,
)
from shop_devkit.plugin import MakeDatabase
from shop_kernel.settings import Settings
from shop_platform.contexts import CONTEXTS, migration_targets
from shop_platform.projections import rebuild_views, views_of

pytestmark = pytest.mark.slow


@pytest.fixture
def shop_settings(
    shop_settings: Settings, own_redis: OwnRedis, make_database: MakeDatabase
) -> Settings:
    return shop_settings.with_overrides(
        database_url=make_database(migration_targets()), redis_url=own_redis.url,
        mongodb_database=f"rebuild_{uuid.uuid4().hex[:8]}",
    )  # fmt: skip


async def test_views_rebuilt_during_checkouts_lose_nothing_projected_meanwhile(
    shop_server: httpx.AsyncClient, shop_worker: None, shop_settings: Settings
) -> None:
    client = shop_server
    admin = await new_admin(client, shop_settings)
    skus = []
    for n in range(3):
        sku = f"LOAD-{n}-{uuid.uuid4().hex[:4].upper()}"
        product = {"sku": sku, "name": f"Load {n}", "price": {"amount": 100 + n, "currency": "EUR"},
                   "stock": 10_000}  # fmt: skip
        assert (await client.post("/products", json=product, headers=admin)).status_code == 201
        skus.append(sku)
    customers = [await new_customer(client) for _ in range(4)]
    stop = asyncio.Event()
    placed: list[str] = []

    async def shop(who: dict[str, str], seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            items = [{"sku": rng.choice(skus), "quantity": rng.randint(1, 3)}]
            made = await client.post("/orders", json={"items": items}, headers=who)
            assert made.status_code == 201, made.text
            order_id = made.json()["id"]
            extra = {"sku": rng.choice(skus), "quantity": 1}
            more = await client.post(f"/orders/{order_id}/items", json=extra, headers=who)
            assert more.status_code == 200, more.text
            confirmed = await client.post(f"/orders/{order_id}/confirm", headers=who)
            assert confirmed.status_code == 202
            placed.append(order_id)
            if rng.random() < 0.3:
                await client.post(f"/orders/{order_id}/cancel", headers=who)

    load = [asyncio.create_task(shop(who, n)) for n, who in enumerate(customers)]
    try:
        await eventually(lambda: _at_least(placed, 10), "the load under way", within=60)
        rebuilds = 0
        deadline = asyncio.get_running_loop().time() + 10
        while rebuilds < 3 or asyncio.get_running_loop().time() < deadline:
            rebuilt = await rebuild_views(shop_settings, CONTEXTS, views_of(CONTEXTS),
                                          lambda _view, _total: lambda _done: None)  # fmt: skip
            assert rebuilt["order_views"] >= 10
            rebuilds += 1
    finally:
        stop.set()
        await asyncio.gather(*load)
    assert len(placed) >= 20, "the load placed too few orders to mean anything"
    await views_equal_rebuilds(shop_settings, within=120)


async def _at_least(placed: list[str], count: int) -> bool:
    return len(placed) >= count
