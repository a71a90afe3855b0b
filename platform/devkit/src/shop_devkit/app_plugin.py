"""pytest plugin (entry point ``shop_app``): the whole app against this session's stores, and
the helpers tests use on it (accounts, waiting for a condition, ``shop`` processes)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from shop_devkit.mail import MailServer

if TYPE_CHECKING:
    from shop_devkit.plugin import MakeDatabase
    from shop_kernel.settings import Settings

# The service's modules are imported inside the fixtures: this plugin is loaded before
# coverage starts, and whatever it imported at load time would count as never run.


@pytest.fixture(scope="session")
def shop_database_url(make_database: MakeDatabase) -> str:
    """One database per session with every schema migrated."""
    from shop_platform.contexts import migration_targets  # noqa: PLC0415

    return make_database(migration_targets())


@pytest.fixture
def shop_settings(
    shop_database_url: str,
    redis_url: str,
    mongodb_server_url: str,
    mongodb_database: str,
    tmp_path: Path,
) -> Settings:
    from shop_platform.contexts import settings_from_env  # noqa: PLC0415

    return settings_from_env({}).with_overrides(
        database_url=shop_database_url,
        redis_url=redis_url,
        mongodb_url=mongodb_server_url,
        mongodb_database=mongodb_database,
        data_dir=str(tmp_path / "data"),
        db_pool_size=5,
        health_timeout=3.0,
        # Every test client comes from one address; tests of the limits set their own.
        rate_limit_login_per_minute=10_000,
        rate_limit_register_per_minute=10_000,
        rate_limit_password_reset_per_minute=10_000,
        rate_limit_password_reset_per_email_per_hour=1000,
    )


@pytest.fixture
def shop_app(shop_settings: Settings) -> Litestar:
    from shop_platform.app import create_app  # noqa: PLC0415

    return create_app(shop_settings, configure_logs=False)


@pytest.fixture
async def shop_client(shop_app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=shop_app) as client:
        yield client


@pytest.fixture
async def shop_server(shop_app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app served by uvicorn on a local port: requests really run at once."""
    import uvicorn  # noqa: PLC0415

    config = uvicorn.Config(
        shop_app, host="127.0.0.1", port=0, lifespan="on", log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # raises what stopped it
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=60
    ) as client:
        yield client
    server.should_exit = True
    await serving


@pytest.fixture
def shop_worker(shop_settings: Settings) -> Iterator[None]:
    """Every context's subscribers and projectors, and the relay, running in this process."""
    from dramatiq import Worker  # noqa: PLC0415

    from shop_platform.worker import build_broker  # noqa: PLC0415

    broker = build_broker(shop_settings)
    broker.emit_after("process_boot")
    running = Worker(broker, worker_threads=2, worker_timeout=50)
    running.start()
    try:
        yield
    finally:
        running.stop()
        broker.close()


def patience() -> float:
    """How much longer than usual a test waits for a condition: ``SHOP_TEST_PATIENCE`` (a
    factor, 1 by default) stretches every wait on a slow or busy machine."""
    import os  # noqa: PLC0415

    return max(1.0, float(os.environ.get("SHOP_TEST_PATIENCE", "1")))


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 30) -> None:
    """Poll ``check`` until it holds (read views are eventually consistent); fail naming it.

    The time allowed is generous: a wait is for a condition, never a measure of speed."""
    allowed = within * patience()
    deadline = time.monotonic() + allowed
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {allowed:.0f} s: {what}")
        await asyncio.sleep(0.1)


TEST_PASSWORD = "correct horse battery"  # noqa: S105 - a test account's, never a real one


async def sign_in(
    client: httpx.AsyncClient, email: str, password: str = TEST_PASSWORD
) -> dict[str, str]:
    """The Authorization header of a fresh token for ``email``."""
    response = await client.post("/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def new_admin(client: httpx.AsyncClient, settings: Settings) -> dict[str, str]:
    """A new admin account, signed in."""
    from shop_platform.admins import create_admin  # noqa: PLC0415

    email = f"admin-{uuid.uuid4().hex[:10]}@example.com"
    await create_admin(settings, email, TEST_PASSWORD)
    return await sign_in(client, email)


async def new_customer(client: httpx.AsyncClient) -> dict[str, str]:
    """A new customer account (registered through the API), signed in."""
    email = f"cust-{uuid.uuid4().hex[:10]}@example.com"
    made = await client.post(
        "/users", json={"email": email, "password": TEST_PASSWORD, "name": "C"}
    )
    assert made.status_code == 201, made.text
    return await sign_in(client, email)


async def new_product(
    client: httpx.AsyncClient, admin: dict[str, str], prefix: str, stock: int = 5
) -> str:
    """A new product in stock (15.00 EUR), made by ``admin``; its sku."""
    sku = f"{prefix}-{uuid.uuid4().hex[:6].upper()}"
    price = {"amount": 1500, "currency": "EUR"}
    body = {"sku": sku, "name": "Lamp", "price": price, "stock": stock}
    made = await client.post("/products", json=body, headers=admin)
    assert made.status_code == 201, made.text
    return sku


async def placed_order(
    client: httpx.AsyncClient, customer: dict[str, str], sku: str, quantity: int = 2
) -> str:
    """A new order of ``quantity`` of ``sku``, confirmed by ``customer`` (202); its id."""
    made = await client.post(
        "/orders", json={"items": [{"sku": sku, "quantity": quantity}]}, headers=customer
    )
    assert made.status_code == 201, made.text
    order_id = str(made.json()["id"])
    confirmed = await client.post(f"/orders/{order_id}/confirm", headers=customer)
    assert confirmed.status_code == 202, confirmed.text
    return order_id


@pytest.fixture
def mail_server() -> Iterator[MailServer]:
    server = MailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class OwnRedis:
    """A redis-server of the test's own (the machine's binary), append-only, that can be
    restarted: no other test's queued messages reach it."""

    def __init__(self, folder: Path) -> None:
        from shop_devkit.embedded import free_port  # noqa: PLC0415

        self.folder, self.port = folder, free_port()
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import shutil  # noqa: PLC0415
        import subprocess  # noqa: PLC0415

        from redis import Redis  # noqa: PLC0415

        binary = shutil.which("redis-server")
        if binary is None:  # pragma: no cover - the machine's Redis is a requirement
            raise RuntimeError("redis-server is not installed")
        self.process = subprocess.Popen(  # noqa: S603 - the machine's redis-server
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if Redis.from_url(self.url).ping():  # pyright: ignore[reportUnknownMemberType]
                    return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def restart(self) -> None:
        self.stop()
        self.start()

    def stop(self) -> None:
        import signal  # noqa: PLC0415

        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # an orderly shutdown flushes the AOF
            self.process.wait(10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A Redis server of the test's own (for tests that count what lands in queues)."""
    redis = OwnRedis(tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


class ShopProcess:
    """One ``shop`` command (``api``, ``worker``) as a subprocess in a session of its own, so
    that it can be stopped gently (SIGTERM) or killed with everything it forked (SIGKILL)."""

    def __init__(self, args: list[str], env: dict[str, str], workdir: Path, name: str) -> None:
        self.args, self.env, self.workdir, self.name = args, env, workdir, name
        self.process: Any = None

    def start(self) -> None:
        import subprocess  # noqa: PLC0415
        import sys  # noqa: PLC0415

        with (self.workdir / f"{self.name}.log").open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our own CLI
                [sys.executable, "-m", "shop_platform.cli", *self.args], cwd=self.workdir,
                env=self.env, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip

    def kill(self) -> None:
        """SIGKILL to the process and everything it forked: a crash, nothing cleaned up."""
        import os  # noqa: PLC0415
        import signal  # noqa: PLC0415

        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30) -> int:
        import os  # noqa: PLC0415
        import signal  # noqa: PLC0415
        import subprocess  # noqa: PLC0415

        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return int(self.process.wait(timeout))
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return int(self.process.wait())

    def log_tail(self, size: int = 3000) -> str:
        return (self.workdir / f"{self.name}.log").read_text(errors="replace")[-size:]


def wait_ready(url: str, processes: list[ShopProcess], within: float = 60) -> None:
    """Block until ``url``/health/ready answers 200; fail with the processes' logs."""
    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name}\n{p.log_tail()}" for p in processes)
            raise RuntimeError(f"{url} was not ready within {within} s:\n{logs}")
        time.sleep(0.2)


async def views_equal_rebuilds(settings: Settings, within: float = 60) -> None:
    """Every view comes to equal a rebuild from the write store within ``within`` seconds
    (once what is still in flight, a killed worker's messages or a backlog, is projected)."""
    from shop_kernel.mongo import ReadStore  # noqa: PLC0415
    from shop_platform.contexts import CONTEXTS  # noqa: PLC0415
    from shop_platform.resources import open_resources  # noqa: PLC0415

    async with open_resources(settings, role="cli") as resources:
        store = ReadStore(cast("Any", resources.mongo)[settings.mongodb_database])
        differences: list[str] = []

        async def equal() -> bool:
            differences.clear()
            for context in CONTEXTS:
                for view in context.views:
                    source = view.source(resources.engine)
                    expected = {doc["_id"]: _stored(doc) async for doc in source.documents()}
                    found = store.collection(view.collection).find({})
                    shown = {doc["_id"]: _stored(doc) async for doc in found}
                    differing = [k for k in expected.keys() | shown.keys()
                                 if shown.get(k) != expected.get(k)]  # fmt: skip
                    if differing:
                        first = _difference(shown.get(differing[0]), expected.get(differing[0]))
                        differences.append(f"{view.name}: {len(differing)} differ, e.g. {first}")
            return not differences

        try:
            await eventually(equal, "every view equal to a rebuild", within=within)
        except AssertionError:
            raise AssertionError("; ".join(differences)) from None


def _stored(value: Any) -> Any:
    """A document as the read store keeps it: times in UTC to the millisecond (BSON dates)."""
    if isinstance(value, datetime):
        moment = value.astimezone(UTC)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if isinstance(value, dict):
        return {key: _stored(item) for key, item in cast("dict[str, Any]", value).items()}
    if isinstance(value, list):
        return [_stored(item) for item in cast("list[Any]", value)]
    return value


def _difference(shown: Any, expected: Any) -> str:
    if not isinstance(shown, dict) or not isinstance(expected, dict):
        return f"shown {shown!r}, rebuilt {expected!r}"
    left, right = cast("dict[str, Any]", shown), cast("dict[str, Any]", expected)
    keys = sorted(k for k in left.keys() | right.keys() if left.get(k) != right.get(k))
    return "; ".join(f"{k}: shown {left.get(k)!r}, rebuilt {right.get(k)!r}" for k in keys)
