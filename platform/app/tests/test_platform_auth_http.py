"""Auth as the whole app wires it: bearer tokens, the admin guard, public routes, the OpenAPI
scheme and the per-address limits on login and registration."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import punq
import pytest
from litestar import Litestar, Request, get, post
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from shop_kernel.auth import Authenticator, Principal, admin_only
from shop_kernel.di import replace
from shop_kernel.settings import Settings
from shop_platform.app import create_app
from shop_users.adapters.tokens import PrincipalRecord, TokenAuthenticator, Tokens

PROBLEM = "application/problem+json"
LOGIN_LIMIT = 3


class FakePrincipals:
    def __init__(self) -> None:
        self.records: dict[UUID, PrincipalRecord] = {}

    def add(self, role: str = "customer") -> PrincipalRecord:
        record = PrincipalRecord(uuid.uuid4(), role, True, 1)  # pyright: ignore[reportArgumentType]
        self.records[record.user_id] = record
        return record

    async def load(self, user_id: UUID) -> PrincipalRecord | None:
        return self.records.get(user_id)


@get("/test/whoami", sync_to_thread=False)
def whoami(request: Request[Principal, Any, Any]) -> dict[str, str]:
    return {"user_id": str(request.user.user_id), "role": request.user.role}


@get("/test/admin", guards=[admin_only], sync_to_thread=False)
def admin_area() -> dict[str, str]:
    return {"status": "ok"}


@post("/auth/token", status_code=200, sync_to_thread=False)
def login_stub() -> dict[str, str]:
    return {"status": "stub"}


@dataclass
class Shop:
    app: Litestar
    client: AsyncTestClient[Litestar]
    principals: FakePrincipals
    tokens: Tokens

    def bearer(self, role: str = "customer") -> dict[str, str]:
        token = self.tokens.issue(self.principals.add(role)).access_token
        return {"Authorization": f"Bearer {token}"}


async def _forget_rate_limits(redis_url: str) -> None:
    redis: Redis = Redis.from_url(redis_url)  # pyright: ignore[reportUnknownMemberType]
    try:
        async for key in redis.scan_iter(match="shop:ratelimit:*"):
            await redis.delete(key)
    finally:
        await redis.aclose()


@pytest.fixture
async def shop(shop_settings: Settings) -> AsyncIterator[Shop]:
    settings = shop_settings.with_overrides(rate_limit_login_per_minute=LOGIN_LIMIT)
    assert settings.redis_url is not None
    await _forget_rate_limits(settings.redis_url)
    app = create_app(settings, configure_logs=False)
    app.register(whoami)
    app.register(admin_area)
    if not any(route.path == "/auth/token" and "POST" in route.methods for route in app.routes):
        app.register(login_stub)  # the users context has not brought its own yet
    principals = FakePrincipals()
    async with AsyncTestClient(app=app) as client:
        container: punq.Container = app.state.container
        tokens: Tokens = container.resolve(Tokens)
        # The users context's authenticator over accounts of the test's (the last one wins).
        replace(container, Authenticator, TokenAuthenticator(tokens, principals))
        yield Shop(app, client, principals, tokens)
    await _forget_rate_limits(settings.redis_url)


async def test_a_protected_route_needs_a_valid_token(shop: Shop) -> None:
    missing = await shop.client.get("/test/whoami")
    bad = await shop.client.get("/test/whoami", headers={"Authorization": "Bearer nope"})
    other_key = Tokens(Settings(), key="x" * 64).issue(shop.principals.add()).access_token
    forged = await shop.client.get("/test/whoami", headers={"Authorization": f"Bearer {other_key}"})

    for response in (missing, bad, forged):
        assert response.status_code == 401
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["status"] == 401


async def test_a_good_token_reaches_the_route_as_its_principal(shop: Shop) -> None:
    record = shop.principals.add("admin")
    token = shop.tokens.issue(record).access_token
    response = await shop.client.get("/test/whoami", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"user_id": str(record.user_id), "role": "admin"}


async def test_admin_only_is_403_for_a_customer_and_open_to_an_admin(shop: Shop) -> None:
    customer = await shop.client.get("/test/admin", headers=shop.bearer("customer"))
    admin = await shop.client.get("/test/admin", headers=shop.bearer("admin"))
    assert customer.status_code == 403
    assert customer.headers["content-type"].startswith(PROBLEM)
    assert admin.status_code == 200


async def test_without_a_principal_source_tokens_are_refused_not_crashed(shop: Shop) -> None:
    headers = shop.bearer()
    full: punq.Container = shop.app.state.container
    bare = punq.Container()
    bare.register(Redis, instance=full.resolve(Redis))
    shop.app.state.container = bare
    try:
        response = await shop.client.get("/test/whoami", headers=headers)
    finally:
        shop.app.state.container = full
    assert response.status_code == 401


async def test_ops_paths_stay_public(shop: Shop) -> None:
    assert (await shop.client.get("/health/live")).status_code == 200
    assert (await shop.client.get("/metrics")).status_code == 200
    assert (await shop.client.get("/schema/openapi.json")).status_code == 200


async def test_openapi_documents_the_bearer_scheme(shop: Shop) -> None:
    schema = (await shop.client.get("/schema/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["BearerToken"]
    assert scheme["type"] == "http"
    assert scheme["scheme"].lower() == "bearer"
    assert scheme["bearerFormat"] == "JWT"
    assert {"BearerToken": []} in schema["security"]


async def test_login_is_rate_limited_per_address_with_retry_after(shop: Shop) -> None:
    allowed = [(await shop.client.post("/auth/token", json={})).status_code for _ in range(3)]
    refused = await shop.client.post("/auth/token", json={})
    registration = await shop.client.post("/users", json={})  # its own counter

    assert 429 not in allowed
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith(PROBLEM)
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    body = refused.json()
    assert body["status"] == 429
    assert body["detail"]
    assert registration.status_code != 429
