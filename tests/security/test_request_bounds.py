"""What one request may cost the service: a body over the limit costs nothing but the refusal,
and a keyed request does not sit on a pooled connection while it waits for something else.

Against served apps: a ``shop api`` process (its memory is measured) and an app under
uvicorn (requests really run at once), with real PostgreSQL, Redis and the Mongo-wire server.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from litestar import Litestar

from shop_devkit.app_plugin import TEST_PASSWORD, ShopProcess, patience, sign_in, wait_ready
from shop_devkit.embedded import free_port
from shop_kernel.settings import Settings
from shop_platform.app import create_app

MiB = 1024 * 1024


@pytest.fixture
def api_process(
    shop_database_url: str, redis_url: str, mongodb_server_url: str, tmp_path: Path
) -> Iterator[tuple[int, ShopProcess]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update(
        SHOP_DATABASE_URL=shop_database_url, SHOP_REDIS_URL=redis_url,
        SHOP_MONGODB_URL=mongodb_server_url, SHOP_MONGODB_DATABASE=f"bounds_{uuid.uuid4().hex[:8]}",
        SHOP_DATA_DIR=str(tmp_path / "data"),
    )  # fmt: skip
    port = free_port()
    process = ShopProcess(["api", "--port", str(port)], env, tmp_path, "api")
    process.start()
    try:
        wait_ready(f"http://127.0.0.1:{port}", [process])
        yield port, process
    finally:
        process.stop()


def peak_rss(pid: int) -> int:
    """The process's resident-set high-water mark in bytes (Linux ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/<pid>/status")


async def send_chunked(port: int, path: str, headers: dict[str, str], total: int) -> bytes:
    """POST ``total`` bytes of JSON-ish filler in 64 KiB chunks; stop sending as soon as the
    server answers (or closes). Returns the answer's bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    writer.write(head.encode())
    answer = asyncio.create_task(reader.read(65536))
    chunk = b"x" * 65536
    sent = 0
    try:
        while sent < total and not answer.done():
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            sent += len(chunk)
        if not answer.done():
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except ConnectionError:
        pass  # the server stopped reading and closed: its answer is already on the way
    try:
        return await asyncio.wait_for(answer, 30 * patience())
    finally:
        writer.close()


async def test_64_mib_chunked_with_an_idempotency_key_is_413_and_the_api_holds_none_of_it(
    api_process: tuple[int, ShopProcess],
) -> None:
    port, process = api_process
    headers = {"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
    # Warm up the route first (another key), so that what it costs anyway is in the baseline.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        warm = await client.post(
            "/users", content=b'{"email": 1}', headers={**headers, "Idempotency-Key": "warm"}
        )
    assert warm.status_code < 500
    before = peak_rss(process.process.pid)
    answer = await send_chunked(port, "/users", headers, 64 * MiB)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"application/problem+json" in rest.lower()
    grown = peak_rss(process.process.pid) - before
    assert grown < 8 * MiB, f"the API's peak RSS grew by {grown / MiB:.1f} MiB"


async def test_a_body_over_the_limit_is_refused_before_the_token_is_even_checked(
    shop_server: httpx.AsyncClient,
) -> None:
    # Checking a token costs a Redis (and a PostgreSQL) read: a refused body costs neither,
    # so an oversized body with a bad token is told about its size, not about its token.
    over = b'{"items": [], "pad": "' + b"x" * (MiB + 1) + b'"}'
    response = await shop_server.post(
        "/orders",
        content=over,
        headers={"Authorization": "Bearer not-a-token", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 413


@pytest.fixture
def small_pool_app(shop_settings: Settings) -> Litestar:
    return create_app(shop_settings.with_overrides(db_pool_size=3, db_max_overflow=0),
                      configure_logs=False)  # fmt: skip


async def test_keyed_registrations_waiting_for_the_hasher_leave_the_pool_to_everyone_else(
    small_pool_app: Litestar,
) -> None:
    import uvicorn  # noqa: PLC0415

    config = uvicorn.Config(small_pool_app, host="127.0.0.1", port=0, lifespan="on",
                            log_config=None, access_log=False)  # fmt: skip
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    limits = httpx.Limits(max_connections=300, max_keepalive_connections=300)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=120
        ) as client:
            await _registrations_leave_the_pool(client)
    finally:
        server.should_exit = True
        await serving


async def _registrations_leave_the_pool(client: httpx.AsyncClient) -> None:
    email = f"reader-{uuid.uuid4().hex[:8]}@example.com"
    made = await client.post(
        "/users", json={"email": email, "password": TEST_PASSWORD, "name": "R"}
    )
    assert made.status_code == 201
    reader = await sign_in(client, email)
    # Each registration hashes (tens of ms, two at a time): 150 of them keep the hasher
    # busy for seconds. Each waits for it holding no connection, so the reads below do not
    # queue behind them for the three pooled connections.
    burst = 150

    async def register(n: int) -> int:
        body = {"email": f"burst-{n}-{uuid.uuid4().hex[:6]}@example.com",
                "password": TEST_PASSWORD, "name": f"Burst {n}"}  # fmt: skip
        answer = await client.post(
            "/users", content=msgspec.json.encode(body),
            headers={"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex},
        )  # fmt: skip
        return answer.status_code

    began = time.perf_counter()
    registrations = [asyncio.create_task(register(n)) for n in range(burst)]
    slowest = 0.0
    reads = 0
    while not all(task.done() for task in registrations):
        started = time.perf_counter()
        me = await client.get("/users/me", headers=reader)
        slowest = max(slowest, time.perf_counter() - started)
        assert me.status_code == 200, me.text
        reads += 1
        await asyncio.sleep(0.05)
    statuses = await asyncio.gather(*registrations)
    lasted = time.perf_counter() - began
    assert statuses == [201] * burst
    assert reads >= 2, "the registrations ended before the reads could measure anything"
    # Holding connections while waiting, a read queues behind nearly the whole burst. Not
    # holding them, it answers within a second, or (a busy machine slows everything) within
    # a small part of the burst: never by timing alone does this fail.
    allowed = max(1.0 * patience(), lasted / 2)
    assert slowest < allowed, f"GET /users/me took {slowest:.2f} s in a burst of {lasted:.2f} s"
