"""No order is stranded: one whose stock never answers is rejected after its deadline, and
whatever the saga does late is undone exactly once.

The whole app and the worker (relay, subscribers, schedules) run on the session's stores.
A delivery is made to fail for good by a constraint in PostgreSQL that refuses its write (a
handler error, dead-lettered at once with no retries), then the constraint is dropped and the
dead letter replayed: the late news changes nothing, and the stock comes out even.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_devkit.app_plugin import OwnRedis, eventually, new_admin, sign_in
from shop_devkit.mail import MailServer
from shop_devkit.plugin import MakeDatabase
from shop_kernel.messaging.dead_letters import dead_letters, replay
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_platform.backbone import Backbone
from shop_platform.contexts import CONTEXTS, migration_targets

pytestmark = pytest.mark.slow


@pytest.fixture
def shop_settings(
    shop_settings: Settings, mail_server: MailServer, own_redis: OwnRedis,
    make_database: MakeDatabase,
) -> Settings:  # fmt: skip
    # Stores of this test's own: the dead letters it reads are its own.
    return shop_settings.with_overrides(
        database_url=make_database(migration_targets()), redis_url=own_redis.url,
        order_pending_timeout=2.0, event_max_retries=0, smtp_url=mail_server.url,
    )  # fmt: skip


@pytest.fixture
async def engine(shop_settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(shop_settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def broker(shop_settings: Settings) -> RedisBroker:
    return Backbone.of(CONTEXTS).broker(shop_settings)


async def sql(engine: AsyncEngine, statement: str, **values: Any) -> list[Any]:
    async with engine.begin() as conn:
        result = await conn.execute(text(statement), values)
        return list(result.all()) if result.returns_rows else []


async def placed_order(client: httpx.AsyncClient, settings: Settings) -> dict[str, Any]:
    """A product with 5 in stock, a customer and their order of 2 of it (not yet confirmed)."""
    admin = await new_admin(client, settings)
    sku = f"LATE-{uuid.uuid4().hex[:6].upper()}"
    product = {"sku": sku, "name": "Kettle", "price": {"amount": 2500, "currency": "EUR"},
               "stock": 5}  # fmt: skip
    assert (await client.post("/products", json=product, headers=admin)).status_code == 201
    email = f"late-{uuid.uuid4().hex[:8]}@example.com"
    body = {"email": email, "password": "correct horse battery", "name": "Late"}
    assert (await client.post("/users", json=body)).status_code == 201
    customer = await sign_in(client, email)
    made = await client.post("/orders", json={"items": [{"sku": sku, "quantity": 2}]},
                             headers=customer)  # fmt: skip
    assert made.status_code == 201
    return {"id": made.json()["id"], "sku": sku, "email": email, "customer": customer}


async def dead_letter_of(broker: RedisBroker, subscriber: str) -> Any:
    found: list[Any] = []

    async def dead() -> bool:
        found[:] = [letter for letter in dead_letters(broker) if letter.subscriber == subscriber]
        return bool(found)

    await eventually(dead, f"{subscriber}'s delivery dead-lettered", within=60)
    return found[0]


async def timed_out(client: httpx.AsyncClient, order: dict[str, Any]) -> None:
    async def rejected() -> bool:
        shown = await client.get(f"/orders/{order['id']}", headers=order["customer"])
        return shown.status_code == 200 and shown.json()["status"] == "rejected"

    await eventually(rejected, "the pending order rejected after its deadline", within=60)
    shown = (await client.get(f"/orders/{order['id']}", headers=order["customer"])).json()
    assert shown["rejection_reason"] == "timeout"


async def rejection_mailed(mail_server: MailServer, order: dict[str, Any]) -> None:
    async def mailed() -> bool:
        return any(order["id"] in str(m["Subject"]) for m in mail_server.catcher.to(order["email"]))

    await eventually(mailed, "the rejection email", within=60)
    [mail] = [m for m in mail_server.catcher.to(order["email"]) if order["id"] in str(m["Subject"])]
    assert "could not be placed" in str(mail["Subject"])
    assert "could not be confirmed in time" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def event_id_of(letter: Any) -> str:
    return str(json.loads(letter.message.args[0])["event_id"])


async def held(engine: AsyncEngine, sku: str) -> int:
    [(reserved,)] = await sql(engine, "SELECT reserved FROM catalog.products WHERE sku = :s", s=sku)
    return int(reserved)


async def handled(engine: AsyncEngine, subscriber: str, event_id: str) -> bool:
    rows = await sql(
        engine, "SELECT 1 FROM messaging.inbox WHERE subscriber = :s AND event_id = :e",
        s=subscriber, e=uuid.UUID(event_id),
    )  # fmt: skip
    return bool(rows)


async def stranded(
    client: httpx.AsyncClient, engine: AsyncEngine, broker: RedisBroker, mail_server: MailServer,
    order: dict[str, Any], *, table: str, refusal: str, subscriber: str,
) -> Any:  # fmt: skip
    """Confirm ``order`` while ``table`` refuses (``refusal`` true) the write ``subscriber``
    makes for it: that delivery is dead-lettered, the order times out and the customer hears
    of it. Returns the dead letter, the constraint gone again."""
    name = f"refuse_{order['id'][:8]}"
    await sql(engine, f"ALTER TABLE {table} ADD CONSTRAINT {name} CHECK ({refusal})")
    try:
        confirmed = await client.post(f"/orders/{order['id']}/confirm", headers=order["customer"])
        assert confirmed.status_code == 202
        letter = await dead_letter_of(broker, subscriber)
        await timed_out(client, order)
        await rejection_mailed(mail_server, order)
    finally:
        await sql(engine, f"ALTER TABLE {table} DROP CONSTRAINT {name}")
    return letter


async def arrives_late(broker: RedisBroker, engine: AsyncEngine, letter: Any) -> None:
    """Replay the dead letter and wait until its subscriber has handled it."""
    replay(broker, letter)
    event_id = event_id_of(letter)

    async def late_one_handled() -> bool:
        return await handled(engine, letter.subscriber, event_id)

    await eventually(late_one_handled, f"the late {letter.subscriber} handled", within=60)


async def movements(engine: AsyncEngine, order: dict[str, Any]) -> list[int]:
    rows = await sql(
        engine,
        "SELECT reserved_delta FROM catalog.stock_movements WHERE order_id = :o ORDER BY id",
        o=uuid.UUID(order["id"]),
    )  # fmt: skip
    return [int(delta) for (delta,) in rows]


async def test_an_order_whose_reservation_was_dead_lettered_times_out_and_the_late_one_holds_none(
    shop_server: httpx.AsyncClient, shop_worker: None, shop_settings: Settings,
    engine: AsyncEngine, broker: RedisBroker, mail_server: MailServer,
) -> None:  # fmt: skip
    order = await placed_order(shop_server, shop_settings)
    # Catalog cannot record this order's reservation (only a "settled" marker passes).
    letter = await stranded(
        shop_server, engine, broker, mail_server, order, table="catalog.reservations",
        refusal=f"order_id <> '{order['id']}' OR status = 'released'",
        subscriber="catalog.ReserveStock",
    )  # fmt: skip
    assert await held(engine, order["sku"]) == 0
    await arrives_late(broker, engine, letter)
    assert await held(engine, order["sku"]) == 0
    assert await movements(engine, order) == []  # never held, so never given back
    [(status,)] = await sql(engine, "SELECT status FROM orders.orders WHERE id = :o",
                            o=uuid.UUID(order["id"]))  # fmt: skip
    assert status == "rejected"


async def test_stock_held_for_an_order_that_timed_out_is_given_back_exactly_once(
    shop_server: httpx.AsyncClient, shop_worker: None, shop_settings: Settings,
    engine: AsyncEngine, broker: RedisBroker, mail_server: MailServer,
) -> None:  # fmt: skip
    order = await placed_order(shop_server, shop_settings)
    # The stock is reserved, but orders cannot record the confirmation.
    letter = await stranded(
        shop_server, engine, broker, mail_server, order, table="orders.orders",
        refusal=f"id <> '{order['id']}' OR status <> 'confirmed'",
        subscriber="orders.ConfirmOrder",
    )  # fmt: skip

    async def given_back() -> bool:
        return await held(engine, order["sku"]) == 0

    await eventually(given_back, "the held stock given back", within=60)
    await arrives_late(broker, engine, letter)
    assert await movements(engine, order) == [2, -2]  # held once, given back once
    assert await held(engine, order["sku"]) == 0
    shown = (await shop_server.get(f"/orders/{order['id']}", headers=order["customer"])).json()
    assert (shown["status"], shown["rejection_reason"]) == ("rejected", "timeout")
