"""A store that hangs costs a 503 within its bound, never a request held forever.

Each store in turn is reached through a TCP server of the test's own (``HungStore``) that
passes traffic through, then hangs: it keeps the connections open and answers nothing, and
accepts new ones without ever answering. The app is served for real with small timeouts.
A request on MongoDB or PostgreSQL then answers 503 problem+json with ``Retry-After`` well
within a generous multiple of its bound, and once the store is back the same process serves
again. With Redis hanging a cached read is served from the view, and the broker's client (the
relay's, the workers') gives up on its command. PostgreSQL is also shown holding a statement
on a lock the test holds: the server's lock timeout (or statement timeout) ends it, with the
same answer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable

import httpx
import psycopg
import pytest
from hung_store import HungStore
from redis.exceptions import TimeoutError as RedisTimeoutError

from shop_devkit.app_plugin import TEST_PASSWORD, eventually, patience
from shop_kernel.redis_client import redis_of
from shop_kernel.settings import Settings
from shop_kernel.sql import libpq_url
from shop_platform.backbone import Backbone
from shop_platform.contexts import CONTEXTS

PROBLEM = "application/problem+json"
# The bounds the app is given here (PostgreSQL's connect timeout cannot go below 2 s); a
# server gone silent in the middle of a statement is given up on after the statement
# timeout plus the connect timeout, 4 s.
SMALL_TIMEOUTS = {
    "db_connect_timeout": 2.0, "db_pool_timeout": 1.0, "db_statement_timeout": 2.0,
    "db_lock_timeout": 0.5, "mongodb_timeout": 0.5, "redis_timeout": 0.5,
}  # fmt: skip
# Generous, nearly four times the longest bound. A store that hangs would hold the request
# for 130 s (libpq's own connect bound), until MongoDB's monitor gives up on the server, or
# for good.
ANSWER_WITHIN = 15.0
STORE_SETTING = {"postgresql": "database_url", "mongodb": "mongodb_url", "redis": "redis_url"}


@pytest.fixture
async def hung_store(
    request: pytest.FixtureRequest, shop_database_url: str, mongodb_server_url: str,
    redis_url: str,
) -> AsyncIterator[HungStore | None]:  # fmt: skip
    """The store a test names (parametrised ``indirect``) behind a HungStore; else none."""
    store: str | None = getattr(request, "param", None)
    if store is None:
        yield None
        return
    urls = {"postgres": shop_database_url, "mongodb": mongodb_server_url, "redis": redis_url}
    hung = HungStore(urls[store])
    await hung.start()
    try:
        yield hung
    finally:
        await hung.close()


@pytest.fixture
def timeouts(request: pytest.FixtureRequest) -> dict[str, float]:
    return {**SMALL_TIMEOUTS, **getattr(request, "param", {})}


@pytest.fixture
def shop_settings(
    shop_settings: Settings, hung_store: HungStore | None, timeouts: dict[str, float]
) -> Settings:
    through = {} if hung_store is None else {STORE_SETTING[hung_store.scheme]: hung_store.url}
    return shop_settings.with_overrides(**timeouts, **through)


async def answer(request: Awaitable[httpx.Response]) -> httpx.Response:
    """The response, which must come: a request the store holds fails the test."""
    allowed = ANSWER_WITHIN * patience()
    try:
        return await asyncio.wait_for(request, allowed)
    except TimeoutError:
        raise AssertionError(f"no answer within {allowed:.0f} s: the store holds it") from None


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert int(response.headers["retry-after"]) >= 1


def new_user() -> dict[str, str]:
    return {"email": f"t-{uuid.uuid4().hex[:10]}@example.com", "password": TEST_PASSWORD,
            "name": "T"}  # fmt: skip


def unknown_name() -> str:
    """A search nobody made before: its answer comes from the view, never from a cache."""
    return f"q{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("hung_store", ["mongodb"], indirect=True)
async def test_a_read_store_that_hangs_costs_a_503_and_reads_come_back_with_it(
    shop_server: httpx.AsyncClient, hung_store: HungStore
) -> None:
    assert (await shop_server.get("/products", params={"q": unknown_name()})).status_code == 200

    hung_store.hang()
    for _ in range(2):  # on a connection it held, then on the ones it accepts
        read = await answer(shop_server.get("/products", params={"q": unknown_name()}))
        assert_unavailable(read)
    # Commands need only PostgreSQL.
    assert (await answer(shop_server.post("/users", json=new_user()))).status_code == 201

    hung_store.recover()

    async def reads_again() -> bool:
        read = await answer(shop_server.get("/products", params={"q": unknown_name()}))
        return read.status_code == 200

    await eventually(reads_again, "reads served again by the same process")


@pytest.mark.parametrize("hung_store", ["postgres"], indirect=True)
async def test_a_write_store_that_hangs_costs_a_503_and_the_next_request_after_it_succeeds(
    shop_server: httpx.AsyncClient, hung_store: HungStore
) -> None:
    assert (await shop_server.post("/users", json=new_user())).status_code == 201

    hung_store.hang()
    # The first meets a pooled connection that went silent; the next ones open new
    # connections the server accepts and never answers.
    for _ in range(3):
        assert_unavailable(await answer(shop_server.post("/users", json=new_user())))

    hung_store.recover()
    made = await answer(shop_server.post("/users", json=new_user()))
    assert made.status_code == 201, made.text


@pytest.mark.parametrize("hung_store", ["redis"], indirect=True)
async def test_a_redis_that_hangs_slows_a_cached_read_by_its_bound_only(
    shop_server: httpx.AsyncClient, hung_store: HungStore
) -> None:
    assert (await shop_server.get("/products", params={"q": unknown_name()})).status_code == 200

    hung_store.hang()
    # The cache is skipped when Redis does not answer; the view still does.
    read = await answer(shop_server.get("/products", params={"q": unknown_name()}))
    assert read.status_code == 200, read.text


@pytest.mark.parametrize("hung_store", ["redis"], indirect=True)
async def test_the_brokers_redis_client_gives_up_on_a_redis_that_hangs(
    shop_settings: Settings, hung_store: HungStore
) -> None:
    """The relay and the workers talk to Redis through the broker's own client."""
    client = redis_of(Backbone.of(CONTEXTS).broker(shop_settings))
    try:
        assert await asyncio.to_thread(client.ping)
        hung_store.hang()
        with pytest.raises(RedisTimeoutError):
            await asyncio.wait_for(asyncio.to_thread(client.ping), ANSWER_WITHIN * patience())
    finally:
        client.close()


@pytest.mark.parametrize(
    "timeouts",
    [
        pytest.param({"db_lock_timeout": 0.5, "db_statement_timeout": 5.0}, id="lock-timeout"),
        # Refused by Settings.from_env (a lock wait must end as a lock timeout); made here
        # directly, it is how a statement of the app outlasts its statement timeout.
        pytest.param({"db_lock_timeout": 5.0, "db_statement_timeout": 1.0}, id="statement-timeout"),
    ],
    indirect=True,
)
async def test_a_statement_held_on_a_lock_costs_a_503_and_the_lock_gone_it_succeeds(
    shop_server: httpx.AsyncClient, shop_database_url: str
) -> None:
    # Registering inserts into users.users, which a SHARE lock of the test's keeps out.
    async with await psycopg.AsyncConnection.connect(libpq_url(shop_database_url)) as holder:
        await holder.execute("LOCK TABLE users.users IN SHARE MODE")
        assert_unavailable(await answer(shop_server.post("/users", json=new_user())))
        await holder.rollback()
    made = await answer(shop_server.post("/users", json=new_user()))
    assert made.status_code == 201, made.text
