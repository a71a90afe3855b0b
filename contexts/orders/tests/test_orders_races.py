"""Orders under truly concurrent requests (a served app): nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import text

from shop_devkit.app_plugin import eventually, new_admin, new_customer
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine


async def product(client: httpx.AsyncClient, boss: dict[str, str], stock: int) -> str:
    sku = f"RACE-{uuid.uuid4().hex[:8].upper()}"
    body = {"sku": sku, "name": "Last Mug", "price": {"amount": 500, "currency": "EUR"},
            "stock": stock}  # fmt: skip
    assert (await client.post("/products", json=body, headers=boss)).status_code == 201
    return sku


async def test_twenty_concurrent_additions_to_one_order_lose_nothing(
    shop_server: httpx.AsyncClient, shop_settings: Settings
) -> None:
    boss, shopper = await new_admin(shop_server, shop_settings), await new_customer(shop_server)
    same, *distinct = [await product(shop_server, boss, 100) for _ in range(11)]
    order = (await shop_server.post("/orders", headers=shopper)).json()
    items = f"/orders/{order['id']}/items"
    bodies = [{"sku": same, "quantity": 1}] * 10 + [{"sku": s, "quantity": 2} for s in distinct]
    answers = await asyncio.gather(
        *(shop_server.post(items, json=body, headers=shopper) for body in bodies)
    )
    assert [a.status_code for a in answers] == [200] * 20, [
        a.text for a in answers if a.status_code != 200
    ]
    versions = sorted(a.json()["version"] for a in answers)
    assert versions == list(range(2, 22))  # each change applied once, one after the other
    final = next(a.json() for a in answers if a.json()["version"] == 21)
    quantities = {line["sku"]: line["quantity"] for line in final["lines"]}
    assert quantities == {same: 10, **dict.fromkeys(distinct, 2)}
    assert final["total"] == {"amount": 30 * 500, "currency": "EUR"}


async def test_ten_customers_competing_for_five_units_get_exactly_five_confirmations(
    shop_server: httpx.AsyncClient, shop_settings: Settings, shop_worker: None
) -> None:
    boss = await new_admin(shop_server, shop_settings)
    sku = await product(shop_server, boss, 5)
    shoppers = [await new_customer(shop_server) for _ in range(10)]
    orders = [
        (await shop_server.post("/orders", json={"items": [{"sku": sku, "quantity": 1}]},
                                headers=who)).json()["id"]
        for who in shoppers
    ]  # fmt: skip
    placed = await asyncio.gather(
        *(
            shop_server.post(f"/orders/{o}/confirm", headers=w)
            for o, w in zip(orders, shoppers, strict=True)
        )
    )
    assert [p.status_code for p in placed] == [202] * 10

    async def outcomes() -> list[str]:
        shown = await asyncio.gather(
            *(
                shop_server.get(f"/orders/{o}", headers=w)
                for o, w in zip(orders, shoppers, strict=True)
            )
        )
        return sorted(s.json()["status"] for s in shown if s.status_code == 200)

    async def settled() -> bool:
        return "pending" not in await outcomes() and len(await outcomes()) == 10

    await eventually(settled, "every order confirmed or rejected")
    assert await outcomes() == ["confirmed"] * 5 + ["rejected"] * 5
    stock = (await shop_server.get(f"/products/{sku}", headers=boss)).json()["stock"]
    await eventually(
        lambda: _stock_is(shop_server, boss, sku, {"on_hand": 5, "reserved": 5, "available": 0}),
        f"all five reserved (was {stock})",
    )


async def test_a_hundred_concurrent_identical_creations_with_one_key_make_one_order(
    shop_server: httpx.AsyncClient, shop_settings: Settings
) -> None:
    boss, shopper = await new_admin(shop_server, shop_settings), await new_customer(shop_server)
    sku = await product(shop_server, boss, 10)
    headers = {**shopper, "Idempotency-Key": uuid.uuid4().hex}
    body = {"items": [{"sku": sku, "quantity": 1}]}
    answers = await asyncio.gather(
        *(shop_server.post("/orders", json=body, headers=headers) for _ in range(100))
    )
    codes = [a.status_code for a in answers]
    assert set(codes) <= {201, 409}, codes
    made = {a.json()["id"] for a in answers if a.status_code == 201}
    assert len(made) == 1
    fresh = [a for a in answers if a.status_code == 201 and "idempotent-replayed" not in a.headers]
    assert len(fresh) == 1
    customer_id = (await shop_server.get("/users/me", headers=shopper)).json()["id"]
    engine = create_engine(shop_settings)
    try:
        async with engine.connect() as conn:
            mine = text("SELECT count(*) FROM orders.orders WHERE customer_id = :c")
            count = (await conn.execute(mine, {"c": customer_id})).scalar_one()
    finally:
        await engine.dispose()
    assert count == 1
    after = await shop_server.post("/orders", json=body, headers=headers)
    assert after.status_code == 201
    assert after.headers["idempotent-replayed"] == "true"
    assert after.json()["id"] in made


async def _stock_is(
    client: httpx.AsyncClient, boss: dict[str, str], sku: str, expected: dict[str, int]
) -> bool:
    return (await client.get(f"/products/{sku}", headers=boss)).json()["stock"] == expected
