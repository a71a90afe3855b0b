"""The per-address limit on logins holds across API processes (API.md: 10 a minute by
default): four `shop api` subprocesses share one Redis, and a burst of concurrent attempts
from one address, spread over all four, gets at most the limit through. Each attempt claims
another address in `X-Forwarded-For`, which counts for nothing: no proxy is trusted.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shop_devkit.app_plugin import OwnRedis, ShopProcess, wait_ready
from shop_devkit.embedded import free_port
from shop_devkit.plugin import MakeDatabase
from shop_platform.contexts import migration_targets

pytestmark = pytest.mark.slow

PROCESSES = 4
ATTEMPTS = 200
LOGIN_LIMIT = 10  # the default of SHOP_RATE_LIMIT_LOGIN_PER_MINUTE
WINDOW_S = 60


@pytest.fixture
def api_urls(
    make_database: MakeDatabase, own_redis: OwnRedis, mongodb_server_url: str, tmp_path: Path
) -> Iterator[list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update(
        SHOP_DATABASE_URL=make_database(migration_targets()), SHOP_REDIS_URL=own_redis.url,
        SHOP_MONGODB_URL=mongodb_server_url, SHOP_MONGODB_DATABASE=f"rl_{uuid.uuid4().hex[:8]}",
        SHOP_DATA_DIR=str(tmp_path / "data"), SHOP_DB_POOL_SIZE="5",
    )  # fmt: skip
    ports = [free_port() for _ in range(PROCESSES)]
    processes = [
        ShopProcess(["api", "--port", str(port)], env, tmp_path, f"api-{index}")
        for index, port in enumerate(ports)
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for process in processes:
            process.start()
        for url in urls:
            wait_ready(url, processes, within=120)
        yield urls
    finally:
        for process in processes:
            process.stop()


async def test_concurrent_logins_over_several_processes_get_at_most_the_limit_through(
    api_urls: list[str],
) -> None:
    limits = httpx.Limits(max_connections=ATTEMPTS, max_keepalive_connections=ATTEMPTS)
    clients = [httpx.AsyncClient(base_url=url, limits=limits, timeout=120) for url in api_urls]
    body = {"email": "nobody@example.com", "password": "not the password"}
    start = asyncio.Event()

    async def attempt(index: int) -> httpx.Response:
        spoofed = {"X-Forwarded-For": f"203.0.113.{index % 250 + 1}"}
        await start.wait()
        return await clients[index % PROCESSES].post("/auth/token", json=body, headers=spoofed)

    try:
        attempts = [asyncio.create_task(attempt(index)) for index in range(ATTEMPTS)]
        began = time.monotonic()
        start.set()
        responses = await asyncio.gather(*attempts)
        elapsed = time.monotonic() - began
    finally:
        for client in clients:
            await client.aclose()

    through = [r for r in responses if r.status_code != 429]
    refused = [r for r in responses if r.status_code == 429]
    # A moving window of a minute: any span of time up to k minutes holds at most k windows.
    budget = LOGIN_LIMIT * (1 + int(elapsed // WINDOW_S))
    assert 1 <= len(through) <= budget, (
        f"{len(through)} of {ATTEMPTS} attempts got through in {elapsed:.1f} s "
        f"(limit {LOGIN_LIMIT} a minute per address)"
    )
    assert {r.status_code for r in through} == {401}  # reached the handler: no such account
    assert len(refused) == ATTEMPTS - len(through)
    for response in refused:
        assert response.headers["content-type"].startswith("application/problem+json")
        assert 1 <= int(response.headers["retry-after"]) <= WINDOW_S
        assert response.json()["status"] == 429
