"""Chaos: orders placed and cancelled while workers (and their relays) are SIGKILLed at random
and Redis is restarted once; afterwards nothing is lost, nothing is doubled.

`shop api` and two `shop worker` programs run as subprocesses on a Redis server of this
test's own (append-only, so that a restart keeps what it acknowledged), against the session's
PostgreSQL and Mongo-wire server and an SMTP server. CI's short run kills at least 20 times;
`uv run pytest -m chaos --kills=100` runs the long one. Afterwards:

- every committed order reaches its final state (none stays pending);
- stock reserved equals the sum over confirmed orders, per product;
- every read view equals a rebuild from the write store;
- each expected email arrived and each delivery is settled; a Message-ID arrived twice only
  where the delivery log shows an attempt cut off by one of the kills (the process that made
  it was killed after the attempt began, before its outcome was written): at least once,
  and a copy only for a kill inside a send;
- the dead-letter queues are empty.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from redis import Redis
from sqlalchemy import text

from shop_devkit.app_plugin import (
    TEST_PASSWORD,
    OwnRedis,
    ShopProcess,
    eventually,
    views_equal_rebuilds,
    wait_ready,
)
from shop_devkit.embedded import free_port
from shop_devkit.mail import MailServer
from shop_devkit.plugin import MakeDatabase
from shop_kernel.messaging.broker import NAMESPACE
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_notifications.adapters.compose import message_id
from shop_platform.contexts import migration_targets, settings_from_env

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

ADMIN = ("chaos-admin@example.com", TEST_PASSWORD)
CUSTOMERS = 6
PRODUCTS = 4


@pytest.fixture
def kills(request: pytest.FixtureRequest) -> int:
    chosen: int | None = request.config.getoption("--kills")
    return chosen if chosen is not None else 20


@pytest.fixture
def stack(
    make_database: MakeDatabase, mongodb_server_url: str, mail_server: MailServer, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    redis = OwnRedis(tmp_path)
    redis.start()
    database_url = make_database(migration_targets())
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update(
        SHOP_DATABASE_URL=database_url, SHOP_REDIS_URL=redis.url,
        SHOP_MONGODB_URL=mongodb_server_url, SHOP_MONGODB_DATABASE=f"chaos_{uuid.uuid4().hex[:8]}",
        SHOP_SMTP_URL=mail_server.url, SHOP_SMTP_TIMEOUT_S="2",
        SHOP_DATA_DIR=str(tmp_path / "data"),
        SHOP_BOOTSTRAP_ADMIN_EMAIL=ADMIN[0], SHOP_BOOTSTRAP_ADMIN_PASSWORD=ADMIN[1],
        SHOP_EVENT_MIN_BACKOFF_MS="100", SHOP_EVENT_MAX_RETRIES="20", SHOP_WORKER_THREADS="4",
        SHOP_RATE_LIMIT_REGISTER_PER_MINUTE="10000", SHOP_RATE_LIMIT_LOGIN_PER_MINUTE="10000",
    )  # fmt: skip
    port = free_port()
    api = ShopProcess(["api", "--port", str(port)], env, tmp_path, "api")
    workers = [
        ShopProcess(["worker"], {**env, "SHOP_WORKER_METRICS_PORT": str(free_port())},
                    tmp_path, f"worker-{n}")
        for n in range(2)
    ]  # fmt: skip
    everything = [api, *workers]
    try:
        for process in everything:
            process.start()
        wait_ready(f"http://127.0.0.1:{port}", everything)
        yield {"url": f"http://127.0.0.1:{port}", "workers": workers, "redis": redis,
               "settings": _settings(env), "mail": mail_server}  # fmt: skip
    finally:
        for process in everything:
            process.stop()
        redis.stop()


def _settings(env: dict[str, str]) -> Settings:
    return settings_from_env({k: v for k, v in env.items() if k.startswith("SHOP_")})


async def test_nothing_is_lost_or_doubled_while_workers_crash_and_redis_restarts(
    stack: dict[str, Any], kills: int
) -> None:
    url, workers, redis = stack["url"], stack["workers"], stack["redis"]
    settings: Settings = stack["settings"]
    mail: MailServer = stack["mail"]
    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        admin = await _token(client, *ADMIN)
        skus = []
        for n in range(PRODUCTS):
            sku = f"CHAOS-{n}-{uuid.uuid4().hex[:4].upper()}"
            body = {"sku": sku, "name": f"Chaos {n}", "price": {"amount": 100 + n,
                    "currency": "EUR"}, "stock": 25}  # fmt: skip
            assert (await client.post("/products", json=body, headers=admin)).status_code == 201
            skus.append(sku)
        shoppers = []
        for n in range(CUSTOMERS):
            email = f"chaos-{n}-{uuid.uuid4().hex[:6]}@example.com"
            made = await client.post("/users", json={"email": email, "password": TEST_PASSWORD,
                                                     "name": f"C{n}"})  # fmt: skip
            assert made.status_code == 201
            shoppers.append((email, await _token(client, email)))

        stop = asyncio.Event()
        placed: list[str] = []
        kill_log: list[tuple[datetime, set[int]]] = []  # when, and the pids that died

        async def shop(who: dict[str, str], seed: int) -> None:
            local = random.Random(seed)
            while not stop.is_set():
                items = [{"sku": s, "quantity": local.randint(1, 3)} for s in local.sample(skus, 2)]
                made = await client.post("/orders", json={"items": items}, headers=who)
                if made.status_code != 201:
                    continue
                order_id = made.json()["id"]
                if (
                    await client.post(f"/orders/{order_id}/confirm", headers=who)
                ).status_code == 202:
                    placed.append(order_id)
                await asyncio.sleep(local.uniform(0.05, 0.3))
                if local.random() < 0.4:
                    await client.post(f"/orders/{order_id}/cancel", headers=who)

        load = [asyncio.create_task(shop(who, n)) for n, (_, who) in enumerate(shoppers)]
        killed = 0
        restarted_redis = False
        try:
            while killed < kills:
                await asyncio.sleep(rng.uniform(0.3, 0.9))
                victim = rng.choice(workers)
                kill_log.append((datetime.now(UTC), _processes_of(victim)))
                victim.kill()
                killed += 1
                victim.start()
                if not restarted_redis and killed == kills // 2:
                    await asyncio.to_thread(redis.restart)
                    restarted_redis = True
        finally:
            stop.set()
            await asyncio.gather(*load, return_exceptions=True)
        assert len(placed) >= 20, "the load placed too few orders to mean anything"
        await _settled(settings, within=120)
        await _invariants_hold(settings, mail, [email for email, _ in shoppers], kill_log)
    dead = Redis.from_url(redis.url)
    letters = sum(dead.zcard(key) for key in dead.scan_iter(f"{NAMESPACE}:*.XQ"))
    assert letters == 0, "messages were dead-lettered"


async def _token(
    client: httpx.AsyncClient, email: str, password: str = TEST_PASSWORD
) -> dict[str, str]:
    answer = await client.post("/auth/token", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


async def _settled(settings: Settings, within: float) -> None:
    engine = create_engine(settings)

    async def quiet() -> bool:
        async with engine.connect() as conn:
            pending = (await conn.execute(text(
                "SELECT (SELECT count(*) FROM orders.orders WHERE status = 'pending')"
                " + (SELECT count(*) FROM messaging.outbox WHERE published_at IS NULL)"
                " + (SELECT count(*) FROM notifications.deliveries WHERE status = 'pending')"
            ))).scalar_one()  # fmt: skip
        return pending == 0

    try:
        await eventually(quiet, "every order final, every event published, every email settled",
                         within=within)  # fmt: skip
        await asyncio.sleep(3)  # the last projections of the last events
        await eventually(quiet, "still quiet", within=within)
    finally:
        await engine.dispose()


def _processes_of(program: ShopProcess) -> set[int]:
    """The program's own pid and those of everything it forked (Dramatiq's worker processes)."""
    try:
        root = psutil.Process(program.process.pid)
        return {root.pid, *(child.pid for child in root.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


async def _copies_explained(
    conn: Any, doubled: dict[str, int], kill_log: list[tuple[datetime, set[int]]]
) -> list[str]:
    """Each extra copy of a Message-ID must match an attempt of its delivery that a kill cut
    off: one whose end was never written, made by a process killed after it began."""
    rows = await conn.execute(text(
        "SELECT d.event_id, d.template, a.process, a.started_at FROM notifications.deliveries d"
        " JOIN notifications.delivery_attempts a ON a.delivery_id = d.id WHERE a.ended_at IS NULL"
    ))  # fmt: skip
    cut_off: Counter[str] = Counter()
    for event_id, template, process, started_at in rows:
        pid = int(process.rsplit(":", 1)[1])
        if any(pid in pids and at >= started_at for at, pids in kill_log):
            cut_off[message_id(event_id, template, "localhost")] += 1
    return [
        f"{mid}: {copies} copies, {cut_off[mid]} attempt(s) cut off by a kill"
        for mid, copies in doubled.items()
        if copies - 1 > cut_off[mid]
    ]


async def _invariants_hold(
    settings: Settings, mail: MailServer, emails: list[str],
    kill_log: list[tuple[datetime, set[int]]],
) -> None:  # fmt: skip
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            held = dict((await conn.execute(text(
                "SELECT sku, reserved FROM catalog.products WHERE sku LIKE 'CHAOS-%'"
            ))).all())  # fmt: skip
            owed: Counter[str] = Counter()
            rows = await conn.execute(
                text("SELECT lines FROM orders.orders WHERE status = 'confirmed'")
            )
            for (lines,) in rows:
                for line in lines:
                    owed[line["sku"]] += line["quantity"]
            sent = dict((await conn.execute(text(
                "SELECT status, count(*) FROM notifications.deliveries GROUP BY status"
            ))).all())  # fmt: skip
            expected_mails = (await conn.execute(text(
                "SELECT count(*) FROM notifications.deliveries WHERE status = 'sent'"
            ))).scalar_one()  # fmt: skip
        assert held == {sku: owed.get(sku, 0) for sku in held}, "reserved stock != confirmed orders"
        assert set(sent) == {"sent"}, sent
        ids = Counter(m["Message-ID"] for m in mail.catcher.messages)
        assert len(ids) == expected_mails, "an email the log counts as sent did not arrive"
        doubled = {k: v for k, v in ids.items() if v > 1}
        async with engine.connect() as conn:
            unexplained = await _copies_explained(conn, doubled, kill_log)
        assert unexplained == [], f"emails sent twice with no kill inside a send: {unexplained}"
        if doubled:
            print(f"{len(doubled)} email(s) arrived twice, each after a kill inside its send")  # noqa: T201
        assert all(mail.catcher.to(email) for email in emails)  # every customer was welcomed
        await views_equal_rebuilds(settings)
    finally:
        await engine.dispose()
