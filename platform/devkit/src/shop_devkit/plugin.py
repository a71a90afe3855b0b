"""pytest plugin (entry point ``shop``): real, isolated stores for each test session.

With ``SHOP_TEST_DATABASE_URL`` / ``SHOP_TEST_REDIS_URL`` / ``SHOP_TEST_MONGODB_URL`` set, the
tests use those servers and make their own databases there (dropped afterwards); for each
one that is unset, the embedded server is started once per session in a temporary folder.
Nothing is started until a test asks for it.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql
from pymongo import MongoClient
from redis import Redis

if TYPE_CHECKING:
    from shop_kernel.migrations import MigrationTarget

# The service's own modules are imported inside the fixtures: this plugin is loaded before
# coverage starts, and whatever it imported at load time would count as never run.

TEST_DATABASE_URL = "SHOP_TEST_DATABASE_URL"
TEST_REDIS_URL = "SHOP_TEST_REDIS_URL"
TEST_MONGODB_URL = "SHOP_TEST_MONGODB_URL"

MakeDatabase = Callable[..., str]


def _unique(prefix: str = "shop_test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def _configured_or_embedded(
    tmp_path_factory: pytest.TempPathFactory, variable: str, service: str
) -> Iterator[str]:
    """The server ``variable`` names, or else the embedded one, started for this session."""
    configured = os.environ.get(variable)
    if configured:
        yield configured
        return
    from shop_devkit.embedded import EmbeddedServices  # noqa: PLC0415

    with EmbeddedServices(
        tmp_path_factory.mktemp("embedded"),
        postgres=service == "postgres",
        redis=service == "redis",
        mongodb=service == "mongodb",
    ) as services:
        yield services.urls[service]


# PostgreSQL


@pytest.fixture(scope="session")
def postgres_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A URL of a database to connect to while tests make their own databases beside it."""
    for url in _configured_or_embedded(tmp_path_factory, TEST_DATABASE_URL, "postgres"):
        from shop_kernel.sql import normalise_database_url  # noqa: PLC0415

        yield normalise_database_url(url)


@pytest.fixture(scope="session")
def make_database(postgres_server_url: str) -> Iterator[MakeDatabase]:
    """``make_database(targets=())`` creates an empty database, migrates ``targets`` into it
    and returns its URL. Every database made is dropped when the session ends."""
    made: list[str] = []
    from shop_kernel.migrations import upgrade  # noqa: PLC0415
    from shop_kernel.sql import libpq_url  # noqa: PLC0415

    admin_url = libpq_url(postgres_server_url)
    base = postgres_server_url.rsplit("/", 1)[0]

    def make(targets: Sequence[MigrationTarget] = ()) -> str:
        name = _unique()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        made.append(name)
        url = f"{base}/{name}"
        if targets:
            upgrade(url, targets)
        return url

    yield make
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for name in made:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


# Redis


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _configured_or_embedded(tmp_path_factory, TEST_REDIS_URL, "redis")


@pytest.fixture(scope="session")
def redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis database (index 1..15) this session has to itself, emptied afterwards."""
    server = (
        redis_server_url.rsplit("/", 1)[0] if redis_server_url.count("/") > 2 else redis_server_url
    )
    marker = f"shop:test-session:{uuid.uuid4().hex}"
    for index in random.sample(range(1, 16), 15):
        client: Redis = Redis.from_url(f"{server}/{index}")  # pyright: ignore[reportUnknownMemberType]
        try:
            claimed = client.set("shop:test-session", marker, nx=True, ex=6 * 3600)
            if claimed and client.dbsize() == 1:  # pyright: ignore[reportUnknownMemberType]
                yield f"{server}/{index}"
                client.flushdb()  # pyright: ignore[reportUnknownMemberType]
                return
            if claimed:
                client.delete("shop:test-session")
        finally:
            client.close()
    pytest.fail(f"no free Redis database (1..15) on {server}")


# MongoDB


@pytest.fixture(scope="session")
def mongodb_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _configured_or_embedded(tmp_path_factory, TEST_MONGODB_URL, "mongodb")


@pytest.fixture(scope="session")
def mongodb_database(mongodb_server_url: str) -> Iterator[str]:
    """A database name of this session's own on the Mongo-wire server, dropped afterwards."""
    name = _unique()
    yield name
    client: MongoClient[dict[str, object]] = MongoClient(mongodb_server_url)
    try:
        client.drop_database(name)
    finally:
        client.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: starts whole processes; kept short")
