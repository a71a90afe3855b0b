"""``DELETE /users/me`` leaves no copy of the person anywhere the service keeps things.

Real processes (`shop api`, `shop worker`) against real PostgreSQL, a Redis of the test's
own, the Mongo-wire server and an SMTP server that refuses the welcome mail naming the
address, as real servers do. The customer registers (with an ``Idempotency-Key``), orders,
has a mail fail for good and another wait for a busy server, and erases the account. Then
every table of every schema, every collection of the read store, every Redis key and value
and both processes' log output are searched for the email and the name: nothing. (Mail the
SMTP server already took is the recipient's, not the shop's.)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
import pytest
from pymongo import MongoClient
from redis import Redis

from shop_devkit.app_plugin import (
    TEST_PASSWORD,
    OwnRedis,
    ShopProcess,
    eventually,
    sign_in,
    wait_ready,
)
from shop_devkit.embedded import free_port
from shop_devkit.mail import MailServer
from shop_devkit.plugin import MakeDatabase
from shop_kernel.sql import libpq_url
from shop_platform.contexts import migration_targets

pytestmark = pytest.mark.slow

ADMIN = ("erasure-admin@example.com", TEST_PASSWORD)


@pytest.fixture
def stack(
    make_database: MakeDatabase, mongodb_server_url: str, mail_server: MailServer, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    redis = OwnRedis(tmp_path)
    redis.start()
    database = f"erasure_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update(
        SHOP_DATABASE_URL=make_database(migration_targets()), SHOP_REDIS_URL=redis.url,
        SHOP_MONGODB_URL=mongodb_server_url, SHOP_MONGODB_DATABASE=database,
        SHOP_SMTP_URL=mail_server.url, SHOP_DATA_DIR=str(tmp_path / "data"),
        SHOP_BOOTSTRAP_ADMIN_EMAIL=ADMIN[0], SHOP_BOOTSTRAP_ADMIN_PASSWORD=ADMIN[1],
        SHOP_LOG_LEVEL="DEBUG", SHOP_EVENT_MIN_BACKOFF_MS="100",
        SHOP_WORKER_METRICS_PORT=str(free_port()),
    )  # fmt: skip
    port = free_port()
    processes = [
        ShopProcess(["api", "--port", str(port)], env, tmp_path, "api"),
        ShopProcess(["worker"], env, tmp_path, "worker"),
    ]
    try:
        for process in processes:
            process.start()
        wait_ready(f"http://127.0.0.1:{port}", processes)
        yield {"url": f"http://127.0.0.1:{port}", "env": env, "redis": redis,
               "processes": processes, "mail": mail_server, "logs": tmp_path}  # fmt: skip
    finally:
        for process in processes:
            process.stop()
        redis.stop()


def hits_in_postgres(url: str, needles: list[str]) -> list[str]:
    found: list[str] = []
    with psycopg.connect(libpq_url(url)) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in tables:
            for row in conn.execute(f'SELECT * FROM "{schema}"."{table}"'):
                text = " ".join(_text(value) for value in row).lower()
                found += [f"{schema}.{table}: {n}" for n in needles if n in text]
    return found


def hits_in_mongodb(url: str, database: str, needles: list[str]) -> list[str]:
    found: list[str] = []
    client: MongoClient[dict[str, Any]] = MongoClient(url)
    try:
        db = client[database]
        for name in db.list_collection_names():
            for document in db[name].find({}):
                text = str(document).lower()
                found += [f"{name}: {n}" for n in needles if n in text]
    finally:
        client.close()
    return found


def hits_in_redis(redis: Any, needles: list[str]) -> list[str]:
    found: list[str] = []
    for key in redis.scan_iter(count=1000):
        kind = redis.type(key).decode()
        values: list[Any] = [key]
        if kind == "string":
            values.append(redis.get(key))
        elif kind == "hash":
            values += [part for pair in redis.hgetall(key).items() for part in pair]
        elif kind == "list":
            values += redis.lrange(key, 0, -1)
        elif kind == "set":
            values += list(redis.smembers(key))
        elif kind == "zset":
            values += redis.zrange(key, 0, -1)
        text = " ".join(_text(value) for value in values).lower()
        found += [f"{key.decode()}: {n}" for n in needles if n in text]
    return found


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


async def test_after_erasure_no_table_collection_key_or_log_line_holds_the_person(
    stack: dict[str, Any],
) -> None:
    mail: MailServer = stack["mail"]
    tag = uuid.uuid4().hex[:8]
    email, name = f"erasable-{tag}@example.com", f"Quirina Erasable {tag}"
    needles = [email.lower(), name.lower()]
    key = f"register-{tag}"
    registration = {"email": email, "password": TEST_PASSWORD, "name": name}
    async with httpx.AsyncClient(base_url=stack["url"], timeout=30) as client:
        admin = await sign_in(client, *ADMIN)
        # The welcome mail is refused for good, by a server that names the address.
        mail.catcher.mode = "refuse_recipient"
        made = await client.post("/users", json=registration, headers={"Idempotency-Key": key})
        assert made.status_code == 201, made.text
        user_id = made.json()["id"]

        async def delivery(template: str) -> dict[str, Any] | None:
            page = await client.get("/notifications", params={"limit": 100}, headers=admin)
            assert page.status_code == 200, page.text
            found = [d for d in page.json()["items"] if d["template"] == template
                     and d["recipient"] in (email, None)]  # fmt: skip
            return found[0] if found else None

        async def welcome_failed() -> bool:
            shown = await delivery("welcome")
            return shown is not None and shown["status"] == "failed"

        await eventually(welcome_failed, "the welcome mail refused for good")
        # An order whose confirmation mail meets a busy server and waits for a retry.
        mail.catcher.mode = "busy"
        sku = f"ERASE-{tag.upper()}"
        product = {"sku": sku, "name": "Plain mug", "price": {"amount": 900, "currency": "EUR"},
                   "stock": 5}  # fmt: skip
        assert (await client.post("/products", json=product, headers=admin)).status_code == 201
        me = await sign_in(client, email)
        order = await client.post("/orders", json={"items": [{"sku": sku, "quantity": 1}]},
                                  headers=me)  # fmt: skip
        assert order.status_code == 201, order.text
        order_id = order.json()["id"]
        assert (await client.post(f"/orders/{order_id}/confirm", headers=me)).status_code == 202

        async def confirmation_tried() -> bool:
            shown = await delivery("order_confirmed")
            return shown is not None and shown["attempts"] >= 1

        await eventually(confirmation_tried, "the confirmation mail tried at a busy server")
        assert (await client.delete("/users/me", headers=me)).status_code == 204

        async def forgotten() -> bool:
            gone = await client.get(f"/users/{user_id}", headers=admin)
            page = await client.get("/notifications", params={"recipient": email}, headers=admin)
            return gone.status_code == 404 and page.json()["items"] == []

        await eventually(forgotten, "the account gone from the views and the delivery log")
        kept = await client.get(f"/orders/{order_id}", headers=admin)
        assert kept.status_code == 200  # orders are kept, anonymised

        async def settled() -> bool:
            return (await delivery("order_confirmed") or {}).get("status") == "failed"

        await eventually(settled, "the waiting confirmation mail dropped for the erasure")
        for process in stack["processes"]:
            assert process.stop() == 0
        env = stack["env"]
        found = hits_in_postgres(env["SHOP_DATABASE_URL"], needles)
        found += hits_in_mongodb(env["SHOP_MONGODB_URL"], env["SHOP_MONGODB_DATABASE"], needles)
        redis = Redis.from_url(cast("OwnRedis", stack["redis"]).url)
        try:
            found += hits_in_redis(redis, needles)
        finally:
            redis.close()
        for log in ("api", "worker"):
            text = (Path(stack["logs"]) / f"{log}.log").read_text(errors="replace").lower()
            found += [f"{log}.log: {n}" for n in needles if n in text]
        assert found == []
        # The same registration with the same key runs anew: no replay of the erased account.
        for process in stack["processes"]:
            process.start()
        wait_ready(stack["url"], stack["processes"])
        again = await client.post("/users", json=registration, headers={"Idempotency-Key": key})
        assert again.status_code == 201, again.text
        assert "idempotent-replayed" not in again.headers
        assert again.json()["id"] != user_id
