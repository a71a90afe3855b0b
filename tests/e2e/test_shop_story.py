"""One customer's story through the real processes: `shop api` and `shop worker` as
subprocesses, against real PostgreSQL, Redis, the Mongo-wire server and an SMTP server.

Register -> welcome email -> an admin adds products -> the customer builds an order ->
confirm -> confirmed -> confirmation email -> cancel -> stock released -> the account is
erased -> the admin's search finds nothing. Read-model checks poll with a deadline.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shop_devkit.app_plugin import TEST_PASSWORD, ShopProcess, eventually, wait_ready
from shop_devkit.embedded import free_port
from shop_devkit.mail import MailServer
from shop_devkit.plugin import MakeDatabase
from shop_devkit.traces import TraceCollector
from shop_platform.contexts import migration_targets

pytestmark = pytest.mark.slow

ADMIN = ("story-admin@example.com", TEST_PASSWORD)
# What the worker traced of a checkout: the reservation, the confirmation, its view, its email.
CHECKOUT_SPANS = {
    "handle catalog.ReserveStock",
    "handle orders.ConfirmOrder",
    "project orders.OrderViewProjector",
    "handle notifications.OrderMail",
}


@pytest.fixture
def traces() -> Iterator[TraceCollector]:
    collector = TraceCollector()
    collector.start()
    try:
        yield collector
    finally:
        collector.stop()


@pytest.fixture
def shop_processes(
    make_database: MakeDatabase, redis_url: str, mongodb_server_url: str,
    mail_server: MailServer, traces: TraceCollector, tmp_path: Path,
) -> Iterator[tuple[str, MailServer]]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update(
        SHOP_DATABASE_URL=make_database(migration_targets()), SHOP_REDIS_URL=redis_url,
        SHOP_MONGODB_URL=mongodb_server_url, SHOP_MONGODB_DATABASE=f"story_{uuid.uuid4().hex[:8]}",
        SHOP_SMTP_URL=mail_server.url, SHOP_DATA_DIR=str(tmp_path / "data"),
        SHOP_BOOTSTRAP_ADMIN_EMAIL=ADMIN[0], SHOP_BOOTSTRAP_ADMIN_PASSWORD=ADMIN[1],
        SHOP_LOG_FORMAT="json", SHOP_WORKER_THREADS="4", SHOP_WORKER_METRICS_PORT=str(free_port()),
        SHOP_OTEL_EXPORTER_OTLP_ENDPOINT=traces.endpoint,
    )  # fmt: skip
    port = free_port()
    processes = [
        ShopProcess(["api", "--port", str(port)], env, tmp_path, "api"),
        ShopProcess(["worker"], env, tmp_path, "worker"),
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        for process in processes:
            process.start()
        wait_ready(url, processes)
        yield url, mail_server
    finally:
        for process in processes:
            process.stop()


def until(check: Callable[[], Awaitable[bool]], what: str) -> Awaitable[None]:
    return eventually(check, what, within=15)


async def test_a_customer_story_from_welcome_to_erasure(
    shop_processes: tuple[str, MailServer], traces: TraceCollector
) -> None:
    url, mail = shop_processes
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def token(email: str, password: str = TEST_PASSWORD) -> dict[str, str]:
            answer = await client.post("/auth/token", json={"email": email, "password": password})
            assert answer.status_code == 200, answer.text
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        async def mails_to(address: str, count: int) -> list[Any]:
            async def arrived() -> bool:
                return len(mail.catcher.to(address)) >= count

            await until(arrived, f"{count} mail(s) to {address}")
            return mail.catcher.to(address)

        # A customer registers and is welcomed.
        email = f"story-{uuid.uuid4().hex[:8]}@example.com"
        made = await client.post("/users", json={"email": email, "password": TEST_PASSWORD,
                                                 "name": "Story"})  # fmt: skip
        assert made.status_code == 201, made.text
        user_id = made.json()["id"]
        [welcome] = await mails_to(email, 1)
        assert "Welcome" in welcome["Subject"]
        # The bootstrap admin adds two products.
        admin = await token(*ADMIN)
        skus = [f"STORY-{n}-{uuid.uuid4().hex[:4].upper()}" for n in range(2)]
        for sku, price in zip(skus, (1500, 250), strict=True):
            money = {"amount": price, "currency": "EUR"}
            body = {"sku": sku, "name": f"Thing {sku}", "price": money, "stock": 10}
            assert (await client.post("/products", json=body, headers=admin)).status_code == 201

        async def stock(sku: str) -> dict[str, int]:
            return (await client.get(f"/products/{sku}", headers=admin)).json().get("stock", {})

        async def listed() -> bool:
            page = (await client.get("/products", params={"q": "STORY-"})).json()
            return set(skus) <= {p["sku"] for p in page["items"]}

        await until(listed, "the new products in the catalog")
        # The customer builds an order and confirms it.
        me = await token(email)
        order = (await client.post("/orders", json={"items": [{"sku": skus[0], "quantity": 2}]},
                                   headers=me)).json()  # fmt: skip
        added = await client.post(f"/orders/{order['id']}/items", json={"sku": skus[1],
                                  "quantity": 3}, headers=me)  # fmt: skip
        assert added.json()["total"] == {"amount": 3750, "currency": "EUR"}
        placed = await client.post(f"/orders/{order['id']}/confirm", headers=me)
        assert placed.status_code == 202

        def status_is(expected: str) -> Callable[[], Awaitable[bool]]:
            async def check() -> bool:
                shown = await client.get(f"/orders/{order['id']}", headers=me)
                return shown.status_code == 200 and shown.json()["status"] == expected

            return check

        await until(status_is("confirmed"), "the order confirmed")

        # Traced across the processes, exported over OTLP: the confirmation's request (the
        # API's) and its projection and email (the worker's) are one trace.
        async def one_trace() -> bool:
            spans = traces.spans()
            request = next((s for s in spans if s.service == "shop-api"
                            and s.name.startswith("POST /orders/")
                            and s.name.endswith("/confirm")), None)  # fmt: skip
            if request is None:
                return False
            worker = {s.name for s in spans
                      if s.trace_id == request.trace_id and s.service == "shop-worker"}  # fmt: skip
            return worker >= CHECKOUT_SPANS

        await until(one_trace, "the checkout's spans of both processes in one trace")

        async def reserved(levels: tuple[int, int]) -> bool:
            return (
                (await stock(skus[0])).get("reserved"),
                (await stock(skus[1])).get("reserved"),
            ) == levels

        await until(lambda: reserved((2, 3)), "its stock reserved")
        mails = await mails_to(email, 2)
        confirmation = next(m for m in mails if order["id"] in m["Subject"])
        assert "confirmed" in confirmation["Subject"]
        # Cancelled: the stock comes back and the customer is told.
        assert (await client.post(f"/orders/{order['id']}/cancel", headers=me)).status_code == 200
        await until(lambda: reserved((0, 0)), "its stock released")
        mails = await mails_to(email, 3)
        assert any("cancelled" in m["Subject"] for m in mails)
        # The customer erases the account: the admin's search finds nothing any more.
        assert (await client.delete("/users/me", headers=me)).status_code == 204

        async def forgotten() -> bool:
            page = (await client.get("/users", params={"q": email}, headers=admin)).json()
            return (
                page["items"] == []
                and (await client.get(f"/users/{user_id}", headers=admin)).status_code == 404
            )

        await until(forgotten, "the erased account gone from the search")
        log = (await client.get("/notifications", params={"limit": 100}, headers=admin)).json()
        assert all(entry["recipient"] != email for entry in log["items"])
        assert (await client.post("/auth/token", json={"email": email, "password": TEST_PASSWORD})
                ).status_code == 401  # fmt: skip
