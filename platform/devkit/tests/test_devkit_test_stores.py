"""The pytest plugin gives each session stores of its own on real servers."""

from __future__ import annotations

import psycopg
from pymongo import MongoClient
from redis import Redis

from shop_devkit.plugin import MakeDatabase
from shop_kernel.sql import libpq_url


def test_each_made_database_is_new_and_empty(make_database: MakeDatabase) -> None:
    first, second = make_database(), make_database()
    assert first != second
    for url in (first, second):
        name = url.rsplit("/", 1)[1]
        assert name.startswith("shop_test_")
        with psycopg.connect(libpq_url(url)) as conn:
            count = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
        assert count == (0,)


def test_the_redis_database_is_not_the_default_one_and_is_claimed(redis_url: str) -> None:
    index = int(redis_url.rsplit("/", 1)[1])
    assert 1 <= index <= 15
    client = Redis.from_url(redis_url)
    try:
        assert client.get("shop:test-session") is not None
    finally:
        client.close()


def test_the_mongodb_database_is_this_sessions_own(
    mongodb_server_url: str, mongodb_database: str
) -> None:
    assert mongodb_database.startswith("shop_test_")
    client: MongoClient[dict[str, object]] = MongoClient(mongodb_server_url)
    try:
        client[mongodb_database]["probe"].insert_one({"ok": True})
        assert client[mongodb_database]["probe"].count_documents({}) == 1
    finally:
        client.close()
