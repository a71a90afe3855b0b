"""The /users and /auth/token rows of API.md, through the real app, stores and worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from shop_devkit.app_plugin import TEST_PASSWORD, eventually, new_admin, sign_in
from shop_kernel.settings import Settings
from shop_kernel.sql import libpq_url
from shop_platform.app import create_app
from shop_platform.contexts import CONTEXTS
from shop_platform.projections import rebuild_views, views_of

Client = AsyncTestClient[Litestar]
PASSWORD = TEST_PASSWORD


def email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@Example.com"


async def register(client: Client, address: str | None = None, name: str = "Ada") -> dict[str, Any]:
    response = await client.post(
        "/users", json={"email": address or email(), "password": PASSWORD, "name": name}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_registration_answers_the_user_without_any_secret(shop_client: Client) -> None:
    address = email()
    user = await register(shop_client, f"  {address} ", "  Ada Lovelace ")
    assert set(user) == {"id", "email", "name", "role", "is_active", "created_at"}
    assert (user["email"], user["name"], user["role"], user["is_active"]) == (
        address.lower(), "Ada Lovelace", "customer", True,
    )  # fmt: skip


async def test_an_email_registers_once_whatever_its_case(shop_client: Client) -> None:
    address = email()
    await register(shop_client, address)
    again = await shop_client.post(
        "/users", json={"email": address.upper(), "password": PASSWORD, "name": "Twin"}
    )
    assert again.status_code == 409
    assert again.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": "short", "name": "A"}, "password"),
        ({"password": "password1", "name": "A"}, "password"),  # on the common list
        ({"password": PASSWORD, "name": "   "}, "name"),
        ({"password": PASSWORD, "name": "A", "role": "admin"}, "role"),  # mass assignment
    ],
)
async def test_bad_registrations_are_refused_with_the_field_named(
    shop_client: Client, body: dict[str, str], field: str | None
) -> None:
    response = await shop_client.post("/users", json={"email": email(), **body})
    assert response.status_code in (400, 422)
    problem = response.json()
    assert field in {error["field"] for error in problem["errors"]}


async def test_unknown_email_and_wrong_password_look_the_same(shop_client: Client) -> None:
    address = email()
    await register(shop_client, address)
    unknown = await shop_client.post("/auth/token", json={"email": email(), "password": PASSWORD})
    wrong = await shop_client.post(
        "/auth/token", json={"email": address, "password": "not the password"}
    )
    assert unknown.status_code == wrong.status_code == 401
    strip = lambda body: {k: v for k, v in body.items() if k not in {"instance", "request_id"}}  # noqa: E731
    assert strip(unknown.json()) == strip(wrong.json())


async def test_a_token_opens_the_own_profile_and_nothing_without_it(shop_client: Client) -> None:
    address = email()
    user = await register(shop_client, address)
    headers = await sign_in(shop_client, address)
    token_body = (
        await shop_client.post("/auth/token", json={"email": address, "password": PASSWORD})
    ).json()
    assert token_body["token_type"] == "bearer"
    assert 0 < token_body["expires_in"] <= 900
    me = await shop_client.get("/users/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["id"] == user["id"]
    assert (await shop_client.get("/users/me")).status_code == 401
    bad = {"Authorization": headers["Authorization"][:-2] + "xx"}
    assert (await shop_client.get("/users/me", headers=bad)).status_code == 401


async def test_a_profile_change_rechecks_the_email(shop_client: Client) -> None:
    taken = email()
    await register(shop_client, taken)
    address = email()
    await register(shop_client, address)
    headers = await sign_in(shop_client, address)
    renamed = await shop_client.patch("/users/me", json={"name": "Ada B."}, headers=headers)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Ada B."
    clash = await shop_client.patch("/users/me", json={"email": taken.upper()}, headers=headers)
    assert clash.status_code == 409


async def test_a_password_change_needs_the_current_one_and_ends_old_tokens(
    shop_client: Client,
) -> None:
    address = email()
    await register(shop_client, address)
    headers = await sign_in(shop_client, address)
    wrong = await shop_client.post(
        "/users/me/password",
        json={"current_password": "nope nope nope", "new_password": "brand new horse"},
        headers=headers,
    )
    assert wrong.status_code == 422
    changed = await shop_client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "brand new horse"},
        headers=headers,
    )
    assert changed.status_code == 204
    await eventually(
        lambda: _status(shop_client, "/users/me", headers, 401), "the old token refused", 6
    )
    await sign_in(shop_client, address, "brand new horse")


async def _status(client: Client, path: str, headers: dict[str, str], expected: int) -> bool:
    return (await client.get(path, headers=headers)).status_code == expected


async def test_the_directory_is_for_admins_and_customers_see_only_themselves(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    marker = uuid.uuid4().hex[:8]
    names = [f"Zed{marker} {n}" for n in range(3)]
    created = [await register(shop_client, name=name) for name in names]
    customer = await sign_in(shop_client, created[0]["email"])
    boss = await new_admin(shop_client, shop_settings)

    assert (await shop_client.get("/users", headers=customer)).status_code == 403
    other = await shop_client.get(f"/users/{created[1]['id']}", headers=customer)
    unknown = await shop_client.get(f"/users/{uuid.uuid4()}", headers=customer)
    assert other.status_code == unknown.status_code == 404

    async def all_three_listed() -> bool:
        page = await shop_client.get(f"/users?q=zed{marker}", headers=boss)
        return page.status_code == 200 and len(page.json()["items"]) == 3

    await eventually(all_three_listed, "the directory shows the new users")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = f"/users?q=ZED{marker}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await shop_client.get(query, headers=boss)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(user["id"] for user in created)  # no gap, no repeat
    admins = (await shop_client.get(f"/users?q=zed{marker}&role=admin", headers=boss)).json()
    assert admins["items"] == []
    assert (await shop_client.get("/users?limit=101", headers=boss)).status_code in (400, 422)
    assert (await shop_client.get("/users?cursor=zzz", headers=boss)).status_code in (400, 422)
    control = await shop_client.get("/users?q=a%00b", headers=boss)
    assert control.status_code in (400, 422)
    assert control.json()["errors"][0]["field"] == "q"
    mine = await shop_client.get(f"/users/{created[0]['id']}", headers=customer)
    assert mine.status_code == 200
    assert mine.json()["name"] == names[0]


async def test_a_deactivated_users_tokens_stop_working_within_5_seconds(
    shop_client: Client, shop_settings: Settings
) -> None:
    user = await register(shop_client)
    headers = await sign_in(shop_client, user["email"])
    boss = await new_admin(shop_client, shop_settings)
    forbidden = await shop_client.patch(
        f"/users/{user['id']}", json={"is_active": False}, headers=headers
    )
    assert forbidden.status_code == 403
    done = await shop_client.patch(f"/users/{user['id']}", json={"is_active": False}, headers=boss)
    assert done.status_code == 200
    assert done.json()["is_active"] is False
    started = time.monotonic()
    await eventually(lambda: _status(shop_client, "/users/me", headers, 401), "refused", 5)
    assert time.monotonic() - started < 5
    login = await shop_client.post(
        "/auth/token", json={"email": user["email"], "password": PASSWORD}
    )
    assert login.status_code == 401


async def test_erasure_leaves_the_email_in_no_store(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    address = email()
    user = await register(shop_client, address, name="Erin Erasable")
    headers = await sign_in(shop_client, address)
    boss = await new_admin(shop_client, shop_settings)
    await eventually(
        lambda: _status(shop_client, f"/users/{user['id']}", boss, 200), "user in the view"
    )
    assert (await shop_client.delete("/users/me", headers=headers)).status_code == 204
    await eventually(
        lambda: _status(shop_client, f"/users/{user['id']}", boss, 404), "user gone from view"
    )
    login = await shop_client.post("/auth/token", json={"email": address, "password": PASSWORD})
    assert login.status_code == 401
    await eventually(lambda: _status(shop_client, "/users/me", headers, 401), "token refused", 5)
    needle = address.lower()
    with psycopg.connect(libpq_url(shop_settings.database_url or "")) as conn:
        for schema, table in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall():
            hits = conn.execute(
                f'SELECT count(*) FROM "{schema}"."{table}" AS t WHERE t::text ILIKE %s',
                (f"%{needle}%",),
            ).fetchone()
            assert hits == (0,), f"{schema}.{table} still holds the erased email"
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(shop_settings.mongodb_url)
    try:
        database = mongo[shop_settings.mongodb_database]
        for name in await database.list_collection_names():
            async for document in database[name].find({}):
                assert needle not in str(document).lower(), f"mongo {name} holds the email"
    finally:
        await mongo.close()
    again = await shop_client.post(
        "/users", json={"email": address, "password": PASSWORD, "name": "Erin again"}
    )
    assert again.status_code == 201
    assert again.json()["id"] != user["id"]


async def test_the_bootstrap_admin_is_there_after_start_up_and_only_once(
    shop_settings: Settings,
) -> None:
    address = email()
    settings = shop_settings.with_overrides(
        bootstrap_admin_email=address, bootstrap_admin_password=PASSWORD
    )
    for _ in range(2):  # a restart changes nothing
        async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
            headers = await sign_in(client, address)
            me = (await client.get("/users/me", headers=headers)).json()
            assert me["role"] == "admin"
    with psycopg.connect(libpq_url(shop_settings.database_url or "")) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM users.users WHERE email = %s", (address.lower(),)
        ).fetchone()
    assert rows == (1,)


def test_create_admin_reads_the_password_from_stdin(shop_settings: Settings) -> None:
    address = email()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env = {
        **clean,
        "SHOP_DATABASE_URL": shop_settings.database_url or "",
        "SHOP_REDIS_URL": shop_settings.redis_url or "",
        "SHOP_MONGODB_URL": shop_settings.mongodb_url or "",
        "SHOP_MONGODB_DATABASE": shop_settings.mongodb_database,
        "SHOP_DATA_DIR": shop_settings.data_dir,
        "SHOP_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "shop_platform.cli", "users", "create-admin", address]
    weak = subprocess.run(
        [*command, "--password-stdin"], input="short\n", env=env, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert weak.returncode == 1
    assert "8..128" in weak.stderr
    made = subprocess.run(
        [*command, "--password-stdin"], input=f"{PASSWORD}\n", env=env, capture_output=True,
        text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert address.lower() in made.stdout
    with psycopg.connect(libpq_url(shop_settings.database_url or "")) as conn:
        row = conn.execute(
            "SELECT role, is_active FROM users.users WHERE email = %s", (address.lower(),)
        ).fetchone()
    assert row == ("admin", True)


async def test_registration_is_rate_limited_per_address(shop_settings: Settings) -> None:
    settings = shop_settings.with_overrides(rate_limit_register_per_minute=2)
    redis: Redis = Redis.from_url(settings.redis_url or "")  # pyright: ignore[reportUnknownMemberType]
    async for key in redis.scan_iter(match="shop:ratelimit:*"):  # earlier tests' counts
        await redis.delete(key)
    await redis.aclose()
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
        codes = [
            (
                await client.post(
                    "/users", json={"email": email(), "password": PASSWORD, "name": "R"}
                )
            ).status_code
            for _ in range(2)
        ]
        refused = await client.post(
            "/users", json={"email": email(), "password": PASSWORD, "name": "R"}
        )
    assert codes == [201, 201]
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert int(refused.headers["retry-after"]) >= 1


async def test_a_role_change_ends_old_tokens_and_opens_the_directory(
    shop_client: Client, shop_settings: Settings
) -> None:
    user = await register(shop_client)
    headers = await sign_in(shop_client, user["email"])
    boss = await new_admin(shop_client, shop_settings)
    promoted = await shop_client.patch(f"/users/{user['id']}", json={"role": "admin"}, headers=boss)
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    await eventually(
        lambda: _status(shop_client, "/users/me", headers, 401), "old token refused", 5
    )
    fresh = await sign_in(shop_client, user["email"])
    assert (await shop_client.get("/users", headers=fresh)).status_code == 200
    missing = await shop_client.patch(
        f"/users/{uuid.uuid4()}", json={"role": "admin"}, headers=boss
    )
    assert missing.status_code == 404
    bad_role = await shop_client.patch(f"/users/{user['id']}", json={"role": "owner"}, headers=boss)
    assert bad_role.status_code in (400, 422)


async def test_the_directory_search_is_backed_by_indexes(
    shop_client: Client, shop_settings: Settings
) -> None:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(shop_settings.mongodb_url)
    try:
        view = mongo[shop_settings.mongodb_database]["user_directory"]
        keys = [list(index["key"]) async for index in await view.list_indexes()]
    finally:
        await mongo.close()
    assert ["name_key", "_id"] in keys
    assert ["email", "_id"] in keys
    assert ["role", "_id"] in keys


async def test_a_rebuilt_directory_equals_the_projected_one(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    kept = await register(shop_client, name="Kept")
    renamed = await register(shop_client, name="Before")
    erased = await register(shop_client, name="Erased")
    renamed_headers = await sign_in(shop_client, renamed["email"])
    await shop_client.patch("/users/me", json={"name": "After"}, headers=renamed_headers)
    erased_headers = await sign_in(shop_client, erased["email"])
    await shop_client.delete("/users/me", headers=erased_headers)
    ids = [kept["id"], renamed["id"], erased["id"]]
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(shop_settings.mongodb_url)
    view = mongo[shop_settings.mongodb_database]["user_directory"]

    async def snapshot() -> dict[str, dict[str, Any]]:
        return {doc["_id"]: doc async for doc in view.find({"_id": {"$in": ids}})}

    async def settled() -> bool:
        docs = await snapshot()
        return (
            len(docs) == 3
            and docs[renamed["id"]]["name"] == "After"
            and docs[erased["id"]]["erased"] is True
        )

    try:
        await eventually(settled, "the projector caught up")
        projected = await snapshot()
        await rebuild_views(
            shop_settings, CONTEXTS, views_of(CONTEXTS, "user_directory"),
            lambda _view, _total: lambda _done: None,
        )  # fmt: skip
        rebuilt = await snapshot()
    finally:
        await mongo.close()
    assert rebuilt == projected
    assert rebuilt[erased["id"]]["email"] is None
    assert rebuilt[erased["id"]]["name"] is None
