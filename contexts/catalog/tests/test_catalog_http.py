"""The /products rows of API.md, through the real app, stores and worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from typing import Any

import msgspec
import pytest
from catalog_order_events import order_cancelled, order_placed
from litestar import Litestar
from litestar.testing import AsyncTestClient
from pymongo import AsyncMongoClient
from sqlalchemy import text

from shop_catalog.adapters.sql import SqlCatalogQueries
from shop_catalog_contract import ProductFacts
from shop_devkit.app_plugin import TEST_PASSWORD, eventually, new_admin, new_customer
from shop_kernel.preconditions import expected_version
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_kernel.unit_of_work import UnitOfWork
from shop_kernel.wire import Amount
from shop_platform.contexts import CONTEXTS
from shop_platform.projections import rebuild_views, views_of

Client = AsyncTestClient[Litestar]
PASSWORD = TEST_PASSWORD


def new_sku() -> str:
    return f"SKU-{uuid.uuid4().hex[:8].upper()}"


def product_body(sku: str, **extra: Any) -> dict[str, Any]:
    return {"sku": sku, "name": "Blue Mug", "price": {"amount": 1250, "currency": "EUR"},
            "stock": 5, **extra}  # fmt: skip


async def test_admins_create_products_and_nobody_else_can(
    shop_client: Client, shop_settings: Settings
) -> None:
    boss = await new_admin(shop_client, shop_settings)
    sku = new_sku()
    created = await shop_client.post("/products", json=product_body(sku), headers=boss)
    assert created.status_code == 201
    body = created.json()
    assert body == {
        "sku": sku, "name": "Blue Mug", "description": "",
        "price": {"amount": 1250, "currency": "EUR"},
        "stock": {"on_hand": 5, "reserved": 0, "available": 5},
        "is_active": True, "version": 1,
    }  # fmt: skip
    assert created.headers["etag"] == '"1"'
    again = await shop_client.post("/products", json=product_body(sku), headers=boss)
    assert again.status_code == 409
    assert (await shop_client.post("/products", json=product_body(new_sku()))).status_code == 401
    shopper = await new_customer(shop_client)
    assert (
        await shop_client.post("/products", json=product_body(new_sku()), headers=shopper)
    ).status_code == 403


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sku": "ABC-1\n"}, "sku"),
        ({"sku": "abc"}, "sku"),
        ({"price": {"amount": 1, "currency": "USD"}}, "price.currency"),
        ({"price": {"amount": -1, "currency": "EUR"}}, "price.amount"),
        ({"stock": -1}, "stock"),
        ({"name": "  "}, "name"),
        ({"colour": "blue"}, "colour"),
    ],
)
async def test_bad_products_are_refused_naming_the_field(
    shop_client: Client, shop_settings: Settings, change: dict[str, Any], field: str
) -> None:
    boss = await new_admin(shop_client, shop_settings)
    response = await shop_client.post(
        "/products", json={**product_body(new_sku()), **change}, headers=boss
    )
    assert response.status_code in (400, 422)
    assert field in {error["field"] for error in response.json()["errors"]}


async def test_if_match_guards_every_change(shop_client: Client, shop_settings: Settings) -> None:
    boss = await new_admin(shop_client, shop_settings)
    sku = new_sku()
    await shop_client.post("/products", json=product_body(sku), headers=boss)
    stale = await shop_client.patch(
        f"/products/{sku}", json={"name": "Red Mug"}, headers={**boss, "If-Match": '"7"'}
    )
    assert stale.status_code == 412
    fresh = await shop_client.patch(
        f"/products/{sku}", json={"name": "Red Mug"}, headers={**boss, "If-Match": '"1"'}
    )
    assert fresh.status_code == 200
    assert fresh.headers["etag"] == '"2"'
    counted = await shop_client.post(
        f"/products/{sku}/stock", json={"adjustment": -2, "reason": "broken"},
        headers={**boss, "If-Match": '"1"'},
    )  # fmt: skip
    assert counted.status_code == 412
    below = await shop_client.post(
        f"/products/{sku}/stock", json={"adjustment": -6, "reason": "count"}, headers=boss
    )
    assert below.status_code == 409
    counted = await shop_client.post(
        f"/products/{sku}/stock", json={"adjustment": -2, "reason": "broken"}, headers=boss
    )
    assert counted.json()["stock"] == {"on_hand": 3, "reserved": 0, "available": 3}
    missing = await shop_client.patch("/products/NO-SUCH", json={"name": "X"}, headers=boss)
    assert missing.status_code == 404
    odd = await shop_client.patch("/products/AB%00C", json={"name": "X"}, headers=boss)
    assert odd.status_code == 404
    nul = await shop_client.post(
        f"/products/{sku}/stock", json={"adjustment": 1, "reason": "a\u0000b"}, headers=boss
    )
    assert nul.status_code == 422
    assert expected_version('"²"') == -1
    assert expected_version('"12"') == 12


async def test_anyone_browses_active_products_and_admins_also_see_inactive_ones(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    boss = await new_admin(shop_client, shop_settings)
    marker = uuid.uuid4().hex[:6].upper()
    skus = [f"P{marker}-{n}" for n in range(3)]
    for sku in skus:
        await shop_client.post("/products", json=product_body(sku), headers=boss)
    await shop_client.patch(f"/products/{skus[2]}", json={"is_active": False}, headers=boss)

    async def visible() -> bool:
        hidden = await shop_client.get(f"/products/{skus[2]}", headers=boss)
        if hidden.status_code != 200 or hidden.json()["is_active"]:
            return False  # the deactivation is not projected yet
        page = await shop_client.get(f"/products?q=p{marker}")
        return [item["sku"] for item in page.json()["items"]] == skus[:2]

    await eventually(visible, "the catalog shows the active products")
    first = (await shop_client.get(f"/products?q=P{marker}&limit=1")).json()
    second = (
        await shop_client.get(f"/products?q=P{marker}&limit=1&cursor={first['next_cursor']}")
    ).json()
    assert [first["items"][0]["sku"], second["items"][0]["sku"]] == skus[:2]
    assert second["next_cursor"] is None
    assert (await shop_client.get(f"/products/{skus[2]}")).status_code == 404
    assert (await shop_client.get(f"/products/{skus[2]}", headers=boss)).status_code == 200
    bad = await shop_client.get(f"/products/{skus[0]}", headers={"Authorization": "Bearer x"})
    assert bad.status_code == 401  # a token that is sent is checked
    assert (await shop_client.get("/products?limit=0")).status_code in (400, 422)
    assert (await shop_client.get("/products?cursor=%%%")).status_code in (400, 422)


async def test_a_price_change_is_never_served_stale_from_the_cache(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    boss = await new_admin(shop_client, shop_settings)
    sku = new_sku()
    await shop_client.post("/products", json=product_body(sku), headers=boss)

    async def price_is(amount: int) -> bool:
        response = await shop_client.get(f"/products/{sku}")
        return response.status_code == 200 and response.json()["price"]["amount"] == amount

    await eventually(lambda: price_is(1250), "the product in the catalog")
    # The view changes behind the cache's back: the cached answer is still served ...
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(shop_settings.mongodb_url)
    try:
        view = mongo[shop_settings.mongodb_database]["product_catalog"]
        await view.update_one({"_id": sku}, {"$set": {"price.amount": 1}})
        assert await price_is(1250)
    finally:
        await mongo.close()
    # ... until the projector applies a real change, which drops the cached one.
    await shop_client.patch(
        f"/products/{sku}", json={"price": {"amount": 990, "currency": "EUR"}}, headers=boss
    )
    await eventually(lambda: price_is(990), "the new price")


async def test_orders_events_reserve_and_release_stock_once_however_often_delivered(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    boss = await new_admin(shop_client, shop_settings)
    sku = new_sku()
    await shop_client.post("/products", json=product_body(sku), headers=boss)
    engine = create_engine(shop_settings)
    order, customer_id = uuid.uuid4(), uuid.uuid4()
    placed = order_placed(order, customer_id, [(sku, 2), (sku, 1)], 2)
    # A copy under a new event id: what the inbox cannot catch (same-id redeliveries it does).
    copy = msgspec.structs.replace(placed, event_id=uuid.uuid4())

    async def publish(*events: Any) -> None:
        async with UnitOfWork(engine) as uow:
            for event in events:
                uow.publish(event)
            await uow.commit()

    async def levels() -> tuple[int, int]:
        async with engine.connect() as conn:
            row = (await conn.execute(
                text("SELECT on_hand, reserved FROM catalog.products WHERE sku = :s"), {"s": sku}
            )).one()  # fmt: skip
        return row.on_hand, row.reserved

    async def outcome(event_type: str) -> int:
        async with engine.connect() as conn:
            return int((await conn.execute(
                text("SELECT count(*) FROM messaging.outbox WHERE aggregate_id = :o "
                     "AND event_type = :t"), {"o": str(order), "t": event_type},
            )).scalar_one())  # fmt: skip

    try:
        await publish(placed, copy)
        await eventually(lambda: _is(levels(), (5, 3)), "the order's stock reserved")
        await eventually(lambda: _is(outcome("catalog.StockReserved.v1"), 1), "one StockReserved")
        cancelled = order_cancelled(order, customer_id, 3)
        await publish(cancelled, msgspec.structs.replace(cancelled, event_id=uuid.uuid4()))
        await eventually(lambda: _is(levels(), (5, 0)), "the order's stock released")
        await eventually(lambda: _is(outcome("catalog.StockReleased.v1"), 1), "one release")
        await asyncio.sleep(0.5)  # nothing more arrives
        assert await levels() == (5, 0)
        assert await outcome("catalog.StockReserved.v1") == 1
    finally:
        await engine.dispose()


async def _is(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def test_orders_read_current_prices_from_the_write_store(
    shop_client: Client, shop_settings: Settings
) -> None:
    boss = await new_admin(shop_client, shop_settings)
    sku = new_sku()
    await shop_client.post("/products", json=product_body(sku), headers=boss)
    await shop_client.patch(
        f"/products/{sku}", json={"price": {"amount": 777, "currency": "EUR"}}, headers=boss
    )
    engine = create_engine(shop_settings)
    try:
        async with UnitOfWork(engine) as uow:
            facts = await SqlCatalogQueries().products(uow, [sku, "NO-SUCH"])
    finally:
        await engine.dispose()
    assert list(facts) == [sku]
    assert facts[sku] == ProductFacts(sku, "Blue Mug", Amount(777, "EUR"), is_active=True)


async def test_the_catalog_search_is_backed_by_indexes(
    shop_client: Client, shop_settings: Settings
) -> None:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(shop_settings.mongodb_url)
    try:
        view = mongo[shop_settings.mongodb_database]["product_catalog"]
        keys = [list(index["key"]) async for index in await view.list_indexes()]
    finally:
        await mongo.close()
    assert ["is_active", "_id"] in keys
    assert ["is_active", "name_key", "_id"] in keys


async def test_a_rebuilt_catalog_is_not_hidden_by_the_cache(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    boss = await new_admin(shop_client, shop_settings)
    sku = new_sku()
    await shop_client.post("/products", json=product_body(sku), headers=boss)

    async def price() -> int | None:
        response = await shop_client.get(f"/products/{sku}")
        return response.json()["price"]["amount"] if response.status_code == 200 else None

    await eventually(lambda: _is(price(), 1250), "the product in the catalog")  # now cached
    engine = create_engine(shop_settings)
    try:  # the write store changes without an event: only a rebuild will notice
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE catalog.products SET price_amount = 4321 WHERE sku = :s"), {"s": sku}
            )
    finally:
        await engine.dispose()
    assert await price() == 1250
    await rebuild_views(
        shop_settings, CONTEXTS, views_of(CONTEXTS, "product_catalog"),
        lambda _view, _total: lambda _done: None,
    )  # fmt: skip
    # Each API process checks the cache's epoch every CHECK_S: the rebuilt
    # answer shows within that, well inside the views' 1 s promise.
    await eventually(lambda: _is(price(), 4321), "the rebuilt price", within=1)
