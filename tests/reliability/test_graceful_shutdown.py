"""SIGTERM stops the processes gently: the API finishes the requests in flight, the worker
finishes the messages in hand, and nothing is lost for the next worker.

`shop api` and `shop worker` run as subprocesses against real PostgreSQL, Redis, the
Mongo-wire server and an SMTP server, exactly as a container runs them (PID 1 gets SIGTERM).
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from shop_devkit.app_plugin import TEST_PASSWORD, ShopProcess, wait_ready
from shop_devkit.embedded import free_port
from shop_devkit.mail import MailServer
from shop_devkit.plugin import MakeDatabase
from shop_platform.contexts import migration_targets

pytestmark = pytest.mark.slow

ADMIN = ("drain-admin@example.com", "drain admin passphrase")


@pytest.fixture
def environment(
    make_database: MakeDatabase, redis_url: str, mongodb_server_url: str,
    mail_server: MailServer, tmp_path: Path,
) -> dict[str, str]:  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update(
        SHOP_DATABASE_URL=make_database(migration_targets()), SHOP_REDIS_URL=redis_url,
        SHOP_MONGODB_URL=mongodb_server_url, SHOP_MONGODB_DATABASE=f"drain_{uuid.uuid4().hex[:8]}",
        SHOP_SMTP_URL=mail_server.url, SHOP_DATA_DIR=str(tmp_path / "data"),
        SHOP_BOOTSTRAP_ADMIN_EMAIL=ADMIN[0], SHOP_BOOTSTRAP_ADMIN_PASSWORD=ADMIN[1],
        SHOP_WORKER_THREADS="2", SHOP_WORKER_METRICS_PORT=str(free_port()),
    )  # fmt: skip
    return env


@pytest.fixture
def api(environment: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, ShopProcess]]:
    port = free_port()
    process = ShopProcess(["api", "--port", str(port)], environment, tmp_path, "api")
    process.start()
    try:
        wait_ready(f"http://127.0.0.1:{port}", [process])
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.stop()


def registration(email: str) -> bytes:
    return msgspec.json.encode({"email": email, "password": TEST_PASSWORD, "name": "Drain"})


def answers(port: int) -> bool:
    """Whether a new connection to ``port`` gets an HTTP answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as late:
            late.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            return late.recv(100).startswith(b"HTTP/1.1")
    except OSError:
        return False


def test_the_api_finishes_a_request_in_flight_after_sigterm_and_then_exits_0(
    api: tuple[str, ShopProcess],
) -> None:
    url, process = api
    port = int(url.rsplit(":", 1)[1])
    body = registration(f"inflight-{uuid.uuid4().hex[:8]}@example.com")
    head = (
        f"POST /users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(head + body[:10])  # the request is in flight: its body is not all here
        time.sleep(0.3)
        process.process.send_signal(15)
        time.sleep(0.5)
        assert not answers(port)  # shutting down: no new request is taken ...
        assert process.process.poll() is None  # ... but the process waits for this request
        client.sendall(body[10:])
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 201"), answer[:300]
    assert process.process.wait(30) == 0, process.log_tail()


def test_the_worker_finishes_the_message_in_hand_after_sigterm_and_the_next_one_loses_nothing(
    api: tuple[str, ShopProcess],
    environment: dict[str, str],
    mail_server: MailServer,
    tmp_path: Path,
) -> None:
    url, _ = api
    mail_server.catcher.mode = "slow"  # each email takes 3 s to be accepted
    mail_server.catcher.slow_s = 3.0
    worker = ShopProcess(["worker"], environment, tmp_path, "worker")
    worker.start()
    first = f"first-{uuid.uuid4().hex[:8]}@example.com"
    second = f"second-{uuid.uuid4().hex[:8]}@example.com"
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            made = client.post("/users", content=registration(first),
                               headers={"Content-Type": "application/json"})  # fmt: skip
            assert made.status_code == 201
            deadline = time.monotonic() + 60
            while mail_server.catcher.attempts < 1:  # the welcome is being handed over
                assert time.monotonic() < deadline, worker.log_tail()
                time.sleep(0.05)
            worker.process.send_signal(15)
            # Registered while the worker drains: its welcome waits for the next worker.
            made = client.post("/users", content=registration(second),
                               headers={"Content-Type": "application/json"})  # fmt: skip
            assert made.status_code == 201
            assert worker.process.wait(30) == 0, worker.log_tail()
            assert len(mail_server.catcher.to(first)) == 1  # finished, not cut off
            mail_server.catcher.mode = "accept"
            successor = ShopProcess(["worker"], environment, tmp_path, "successor")
            successor.start()
            try:
                deadline = time.monotonic() + 60
                while not mail_server.catcher.to(second):
                    assert time.monotonic() < deadline, successor.log_tail()
                    time.sleep(0.1)
                time.sleep(2)  # a repeat of the first welcome would have come by now
            finally:
                assert successor.stop() == 0, successor.log_tail()
    finally:
        worker.stop()
    assert len(mail_server.catcher.to(first)) == 1
    assert len(mail_server.catcher.to(second)) == 1
