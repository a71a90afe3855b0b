"""Outages of the read store and of the mail server: nothing healthy is dead-lettered.

The Mongo-wire server and the SMTP server are real servers of this test's own, stopped for
longer than the retry budget (one retry here) and started again on the same port. Meanwhile
the API keeps taking commands (reads answer 503), and afterwards every view equals a
rebuild, every email arrived once, and the dead-letter queues are empty.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from redis import Redis
from sqlalchemy import text

from shop_devkit.app_plugin import (
    TEST_PASSWORD,
    OwnRedis,
    eventually,
    new_admin,
    new_customer,
    new_product,
    placed_order,
    views_equal_rebuilds,
)
from shop_devkit.embedded import RunningService, free_port, start_mongodb
from shop_devkit.mail import MailServer
from shop_devkit.plugin import MakeDatabase
from shop_kernel.messaging.broker import NAMESPACE
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_platform.contexts import migration_targets

pytestmark = pytest.mark.slow

PROBLEM = "application/problem+json"


class OwnMongo:
    """A Mongo-wire server of this test's own that can be stopped and started again."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.server: RunningService | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self) -> None:
        self.server = start_mongodb(self.folder, port=self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture
def own_mongo(tmp_path: Path) -> Iterator[OwnMongo]:
    mongo = OwnMongo(tmp_path / "mongo")
    mongo.start()
    try:
        yield mongo
    finally:
        mongo.stop()


@pytest.fixture
def shop_settings(
    shop_settings: Settings, own_mongo: OwnMongo, own_redis: OwnRedis, mail_server: MailServer,
    make_database: MakeDatabase,
) -> Settings:  # fmt: skip
    # Stores of this test's own: what other tests left queued or stored plays no part.
    # A retry budget of one retry 50 ms later: any outage of a second outlasts it.
    return shop_settings.with_overrides(
        database_url=make_database(migration_targets()), redis_url=own_redis.url,
        mongodb_url=own_mongo.url, smtp_url=mail_server.url, smtp_timeout_s=2.0,
        event_max_retries=1, event_min_backoff_ms=50,
    )  # fmt: skip


@pytest.fixture
def client(shop_server: httpx.AsyncClient, shop_worker: None) -> httpx.AsyncClient:
    return shop_server


def outage_retries(subscriber: str) -> float:
    """Deliveries of ``subscriber`` retried for an outage, in this process (the worker's)."""
    value = REGISTRY.get_sample_value("shop_event_outage_retries_total", {"subscriber": subscriber})
    return value or 0.0


def dead_letter_count(settings: Settings) -> int:
    client = Redis.from_url(settings.redis_url or "")
    try:
        return sum(int(client.zcard(key)) for key in client.scan_iter(f"{NAMESPACE}:*.XQ"))  # pyright: ignore[reportArgumentType]
    finally:
        client.close()


async def beyond_the_budget(subscriber: str, before: float) -> None:
    """Until ``subscriber`` has been retried for the outage more often than its budget allows."""

    async def outlasted() -> bool:
        return outage_retries(subscriber) - before >= 3

    await eventually(outlasted, f"{subscriber} retried through the outage", within=120)


async def test_a_read_store_outage_longer_than_the_retry_budget_loses_no_projection(
    client: httpx.AsyncClient, shop_settings: Settings, own_mongo: OwnMongo
) -> None:
    admin = await new_admin(client, shop_settings)
    sku = await new_product(client, admin, "OUT")
    before = outage_retries("orders.OrderViewProjector")

    own_mongo.stop()
    # Commands go on while the read store is down; the saga needs only PostgreSQL.
    customer = await new_customer(client)
    order_id = await placed_order(client, customer, sku)
    changed = await client.patch(f"/products/{sku}", json={"name": "Desk lamp"}, headers=admin)
    assert changed.status_code == 200
    read = await client.get(f"/products/{sku}")
    assert read.status_code == 503
    assert read.headers["content-type"].startswith(PROBLEM)
    assert int(read.headers["retry-after"]) >= 1
    ready = await client.get("/health/ready")
    assert ready.status_code == 200  # the API stays in service
    assert ready.json()["checks"]["mongodb"] != "ok"

    engine = create_engine(shop_settings)
    try:

        async def confirmed() -> bool:
            async with engine.connect() as conn:
                status = (await conn.execute(
                    text("SELECT status FROM orders.orders WHERE id = :id"), {"id": order_id},
                )).scalar_one()  # fmt: skip
            return bool(status == "confirmed")

        await eventually(confirmed, "the order confirmed with the read store down", within=60)
    finally:
        await engine.dispose()
    await beyond_the_budget("orders.OrderViewProjector", before)

    own_mongo.start()
    await views_equal_rebuilds(shop_settings, within=120)
    shown = await client.get(f"/orders/{order_id}", headers=customer)
    assert shown.status_code == 200
    assert shown.json()["status"] == "confirmed"
    assert (await client.get(f"/products/{sku}")).json()["name"] == "Desk lamp"
    assert dead_letter_count(shop_settings) == 0


async def test_a_mail_server_outage_longer_than_the_retry_budget_loses_no_email(
    client: httpx.AsyncClient, shop_settings: Settings, mail_server: MailServer
) -> None:
    before = outage_retries("notifications.Welcome")
    mail_server.stop()
    emails = [f"outage-{n}-{uuid.uuid4().hex[:6]}@example.com" for n in range(3)]
    for email in emails:
        body = {"email": email, "password": TEST_PASSWORD, "name": "Out"}
        assert (await client.post("/users", json=body)).status_code == 201
    await beyond_the_budget("notifications.Welcome", before)

    mail_server.start()

    async def welcomed() -> bool:
        return all(mail_server.catcher.to(email) for email in emails)

    await eventually(welcomed, "every welcome after the mail server is back", within=120)
    assert [len(mail_server.catcher.to(email)) for email in emails] == [1, 1, 1]
    assert dead_letter_count(shop_settings) == 0
