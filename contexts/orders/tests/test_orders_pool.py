"""A command that already holds a database connection never waits for a second one.

An order created with an Idempotency-Key runs inside the key's transaction, on one pooled
connection; its catalog prices are read on that same connection. Were they read on another,
as many such requests as the pool has connections would each hold one and wait for a
second until the pool's timeout: a stalled API under exactly the load it should take.
"""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from shop_devkit.app_plugin import new_admin, new_customer
from shop_kernel.settings import Settings

Client = AsyncTestClient[Litestar]


@pytest.fixture
def shop_settings(shop_settings: Settings) -> Settings:
    return msgspec.structs.replace(shop_settings, db_pool_size=1, db_max_overflow=0)


async def test_idempotent_orders_with_items_go_through_a_pool_of_one_connection(
    shop_client: Client, shop_settings: Settings
) -> None:
    boss, shopper = await new_admin(shop_client, shop_settings), await new_customer(shop_client)
    sku = f"POOL-{uuid.uuid4().hex[:8].upper()}"
    made = await shop_client.post(
        "/products",
        json={"sku": sku, "name": "Cup", "price": {"amount": 500, "currency": "EUR"}, "stock": 9},
        headers=boss,
    )
    assert made.status_code == 201

    async def order() -> int:
        headers = {**shopper, "Idempotency-Key": uuid.uuid4().hex}
        body = {"items": [{"sku": sku, "quantity": 1}]}
        return (await shop_client.post("/orders", json=body, headers=headers)).status_code

    statuses = await asyncio.wait_for(asyncio.gather(*(order() for _ in range(3))), timeout=15)
    assert statuses == [201, 201, 201]
