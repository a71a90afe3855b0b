"""Every PostgreSQL connection is bounded; the server's bounds end what takes too long.

Against the session's real PostgreSQL: the bounds the settings name reach each connection
of an engine (and none of a long-running one), a statement over its time and a statement
waiting for a lock are cancelled by the server, a transaction left idle is ended, and each
is classified as an outage or not as ``shop_kernel.outages`` documents.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import LiteralString

import psycopg
import pytest
from pymongo.errors import ExecutionTimeout, NetworkTimeout, OperationFailure
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from shop_devkit.plugin import MakeDatabase
from shop_kernel.outages import is_outage
from shop_kernel.settings import Settings, SettingsError
from shop_kernel.sql import create_engine, database_url, libpq_url

BOUNDS = ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")


@pytest.fixture
def database(make_database: MakeDatabase) -> str:
    url = make_database()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("CREATE TABLE shelf (name text)")
    return url


@pytest.fixture
async def holder(database: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    """A connection of the test's own that holds the shelf locked until the test ends."""
    async with await psycopg.AsyncConnection.connect(libpq_url(database)) as conn:
        await conn.execute("LOCK TABLE shelf IN ACCESS EXCLUSIVE MODE")
        yield conn
        await conn.rollback()


def test_store_timeouts_are_durations_read_from_the_environment() -> None:
    settings = Settings.from_env({
        "SHOP_DB_CONNECT_TIMEOUT": "3", "SHOP_DB_POOL_TIMEOUT": "2s",
        "SHOP_DB_STATEMENT_TIMEOUT": "1m", "SHOP_DB_LOCK_TIMEOUT": "250ms",
        "SHOP_DB_IDLE_IN_TRANSACTION_TIMEOUT": "5m", "SHOP_MONGODB_TIMEOUT": "1.5s",
        "SHOP_REDIS_TIMEOUT": "500ms",
    })  # fmt: skip
    assert (settings.db_connect_timeout, settings.db_pool_timeout) == (3.0, 2.0)
    assert (settings.db_statement_timeout, settings.db_lock_timeout) == (60.0, 0.25)
    assert settings.db_idle_in_transaction_timeout == 300.0
    assert (settings.mongodb_timeout, settings.redis_timeout) == (1.5, 0.5)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SHOP_DB_CONNECT_TIMEOUT": "1"}, "SHOP_DB_CONNECT_TIMEOUT: whole seconds, at least 2"),
        ({"SHOP_DB_CONNECT_TIMEOUT": "2.5s"}, "SHOP_DB_CONNECT_TIMEOUT: whole seconds"),
        ({"SHOP_DB_STATEMENT_TIMEOUT": "0"}, "SHOP_DB_STATEMENT_TIMEOUT: expected `float` > 0"),
        ({"SHOP_MONGODB_TIMEOUT": "soon"}, "SHOP_MONGODB_TIMEOUT: a duration like 90s"),
        ({"SHOP_DB_LOCK_TIMEOUT": "30s"}, "SHOP_DB_LOCK_TIMEOUT: must be shorter than"),
        (
            {"SHOP_DB_IDLE_IN_TRANSACTION_TIMEOUT": "1m"},
            "SHOP_DB_IDLE_IN_TRANSACTION_TIMEOUT: must be longer than SHOP_EVENT_TIME_LIMIT_MS",
        ),
    ],
)
def test_a_store_timeout_that_cannot_work_is_refused(
    environ: dict[str, str], expected: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(environ)
    assert str(refused.value).startswith(expected)


def test_timeouts_that_fit_together_are_taken_whatever_their_order() -> None:
    settings = Settings.from_env({"SHOP_DB_LOCK_TIMEOUT": "45s", "SHOP_DB_STATEMENT_TIMEOUT": "1m"})
    assert settings.db_lock_timeout < settings.db_statement_timeout


def test_every_connection_made_from_the_url_is_bounded_in_connecting() -> None:
    given = Settings(database_url="postgresql://u@db/shop?host=/run/pg%20x", db_connect_timeout=3)
    assert (
        database_url(given) == "postgresql+psycopg://u@db/shop?host=/run/pg%20x&connect_timeout=3"
    )
    own = Settings(database_url="postgresql://u@db/shop?connect_timeout=20")
    assert database_url(own) == "postgresql+psycopg://u@db/shop?connect_timeout=20"


async def test_each_connection_of_an_engine_starts_with_the_servers_bounds(database: str) -> None:
    settings = Settings(
        database_url=database, db_statement_timeout=7.0, db_lock_timeout=0.25,
        db_idle_in_transaction_timeout=90.0,
    )  # fmt: skip
    bounded, unbounded = create_engine(settings), create_engine(settings, long_running=True)
    try:
        for engine, expected in ((bounded, ["7s", "250ms", "90s"]), (unbounded, ["0"] * 3)):
            async with engine.connect() as conn:
                shown = [(await conn.execute(text(f"SHOW {bound}"))).scalar() for bound in BOUNDS]
            assert shown == expected
    finally:
        await bounded.dispose()
        await unbounded.dispose()


async def test_the_urls_own_options_win_over_the_settings(database: str) -> None:
    url = f"{database}?options=-c%20lock_timeout%3D3s"
    engine = create_engine(Settings(database_url=url, db_lock_timeout=0.25))
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SHOW lock_timeout"))).scalar() == "3s"
            assert (await conn.execute(text("SHOW statement_timeout"))).scalar() == "30s"
    finally:
        await engine.dispose()


async def test_a_statement_over_its_time_is_cancelled_and_spends_the_retry_budget(
    database: str,
) -> None:
    engine = create_engine(Settings(database_url=database, db_statement_timeout=0.5,
                                    db_lock_timeout=0.25))  # fmt: skip
    try:
        async with engine.connect() as conn:
            with pytest.raises(OperationalError) as cancelled:
                await conn.execute(text("SELECT pg_sleep(30)"))
        assert isinstance(cancelled.value.orig, psycopg.errors.QueryCanceled)
        assert not is_outage(cancelled.value)
    finally:
        await engine.dispose()


async def test_a_lock_held_past_the_lock_timeout_is_an_outage_to_wait_out(
    database: str, holder: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    del holder  # holds the shelf
    engine = create_engine(Settings(database_url=database, db_lock_timeout=0.25))
    try:
        async with engine.connect() as conn:
            with pytest.raises(OperationalError) as waited:
                await conn.execute(text("SELECT count(*) FROM shelf"))
        assert isinstance(waited.value.orig, psycopg.errors.LockNotAvailable)
        assert is_outage(waited.value)
    finally:
        await engine.dispose()


async def test_a_long_running_engine_waits_for_a_lock_as_long_as_it_is_held(
    database: str, holder: psycopg.AsyncConnection[tuple[object, ...]]
) -> None:
    engine = create_engine(Settings(database_url=database, db_lock_timeout=0.25), long_running=True)
    try:
        async with engine.connect() as conn:
            waiting = asyncio.ensure_future(conn.execute(text("SELECT count(*) FROM shelf")))
            await _until(lambda: _waiting_for_a_lock(database), "the statement waits for the lock")
            assert not waiting.done()
            await holder.rollback()
            assert (await waiting).scalar() == 0
    finally:
        await engine.dispose()


async def test_a_transaction_left_idle_is_ended_by_the_server(database: str) -> None:
    engine = create_engine(Settings(database_url=database, db_idle_in_transaction_timeout=0.5))
    try:
        async with engine.connect() as conn:
            pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            await _until(lambda: _gone(database, pid), "the idle session is ended")
            with pytest.raises(DBAPIError) as ended:
                await conn.execute(text("SELECT 1"))
        assert ended.value.connection_invalidated
        async with engine.connect() as conn:  # the pool replaced it
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    "failure",
    [
        NetworkTimeout("127.0.0.1:27017: timed out"),
        ExecutionTimeout("operation exceeded time limit", 50),
    ],
    ids=lambda failure: type(failure).__name__,
)
def test_a_read_store_that_did_not_answer_in_time_is_an_outage(failure: Exception) -> None:
    assert is_outage(failure)


def test_a_read_store_error_that_is_no_timeout_is_no_outage() -> None:
    assert not is_outage(OperationFailure("unknown operator: $bogus", 2))


async def _waiting_for_a_lock(database: str) -> bool:
    waiting = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return bool(await _scalar(database, waiting))


async def _gone(database: str, pid: int) -> bool:
    return not await _scalar(database, "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid)


async def _scalar(database: str, query: LiteralString, *params: object) -> object:
    async with await psycopg.AsyncConnection.connect(libpq_url(database)) as conn:
        row = await (await conn.execute(query, params)).fetchone()
    assert row is not None
    return row[0]


async def _until(check: Callable[[], Awaitable[bool]], what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f} s: {what}")
        await asyncio.sleep(0.05)
