"""Access tokens: the signing key, tokens, what the bearer check (the platform's middleware
asking users' authenticator) refuses, the principal cache and the admin guard (real Redis)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import stat
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import jwt
import pytest
from litestar import Litestar, Request, get, post
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from shop_devkit.embedded import free_port
from shop_kernel.auth import Principal, admin_only
from shop_kernel.settings import Settings, SettingsError
from shop_platform.http.auth import bearer_auth
from shop_users.adapters import tokens as token_module
from shop_users.adapters.tokens import (
    AUDIENCE,
    ISSUER,
    LOCAL_TTL_S,
    SIGNING_KEY_FILE,
    CachedPrincipals,
    PrincipalRecord,
    PrincipalSource,
    TokenAuthenticator,
    Tokens,
    principal_cache_key,
    signing_key,
)
from shop_users.settings import UsersSettings

KEY = "k" * 64


# ------------------------------------------------------------------------------ signing key


def test_the_configured_secret_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data")).with_sections(
        UsersSettings(jwt_secret="s" * 40)
    )
    assert signing_key(settings) == "s" * 40
    assert not (tmp_path / "data").exists()


def test_a_key_is_generated_once_private_and_stable(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    first = signing_key(settings)
    path = tmp_path / "data" / SIGNING_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 64
    assert signing_key(settings) == first
    assert Tokens(settings).key == first
    assert [p.name for p in (tmp_path / "data").iterdir()] == [
        SIGNING_KEY_FILE
    ]  # no drafts left behind
    assert signing_key(Settings(data_dir=str(tmp_path / "other"))) != first


def test_a_creator_that_loses_the_race_takes_the_winners_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=str(tmp_path))
    winner = "w" * 86
    real_link = os.link

    def link_after_someone_else(src: Any, dst: Any) -> None:
        Path(dst).write_text(winner + "\n")  # another process linked its key meanwhile
        real_link(src, dst)

    monkeypatch.setattr(token_module.os, "link", link_after_someone_else)
    assert signing_key(settings) == winner
    assert [p.name for p in tmp_path.iterdir()] == [SIGNING_KEY_FILE]


def _key_in_child(data_dir: str, barrier: Any, keys: Any) -> None:
    barrier.wait()
    keys.put(signing_key(Settings(data_dir=data_dir)))


def test_concurrent_processes_agree_on_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    count = 4
    barrier = context.Barrier(count)
    keys = context.Queue()
    children = [
        context.Process(target=_key_in_child, args=(str(tmp_path), barrier, keys))
        for _ in range(count)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=60)
    assert [child.exitcode for child in children] == [0] * count
    found = {keys.get(timeout=5) for _ in range(count)}
    assert found == {(tmp_path / SIGNING_KEY_FILE).read_text().strip()}


def test_concurrent_threads_agree_on_one_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path / "data"))
    barrier = threading.Barrier(8)
    found: list[str] = []

    def create() -> None:
        barrier.wait()
        found.append(signing_key(settings))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8
    assert len(set(found)) == 1


def test_a_damaged_key_file_is_refused_with_advice(tmp_path: Path) -> None:
    (tmp_path / SIGNING_KEY_FILE).write_text("short\n")
    with pytest.raises(ValueError, match="SHOP_JWT_SECRET"):
        signing_key(Settings(data_dir=str(tmp_path)))


# ------------------------------------------------------------------------------ tokens


def _record(*, role: str = "customer", active: bool = True, gen: int = 1) -> PrincipalRecord:
    return PrincipalRecord(uuid.uuid4(), role, active, gen)  # pyright: ignore[reportArgumentType]


def test_tokens_round_trip_with_the_promised_claims() -> None:
    tokens = Tokens(Settings().with_sections(UsersSettings(access_token_ttl_s=600)), key=KEY)
    record = _record(gen=7)
    issued = tokens.issue(record)
    claims = jwt.decode(issued.access_token, KEY, algorithms=["HS256"], audience=AUDIENCE)
    decoded = tokens.decode(issued.access_token)

    assert issued.expires_in == 600
    assert jwt.get_unverified_header(issued.access_token)["alg"] == "HS256"
    assert claims["sub"] == str(record.user_id)
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["gen"] == 7
    assert claims["exp"] - claims["iat"] == 600
    assert claims["jti"]
    assert decoded.sub == str(record.user_id)
    assert decoded.gen == 7
    assert tokens.issue(record).access_token != issued.access_token  # a new jti each time
    assert KEY not in repr(tokens)


def test_no_token_for_a_deactivated_account_and_no_short_key() -> None:
    with pytest.raises(ValueError, match="deactivated"):
        Tokens(Settings(), key=KEY).issue(_record(active=False))
    with pytest.raises(ValueError, match="32"):
        Tokens(Settings(), key="short")


# ------------------------------------------------------------------------------ the bearer check


class FakeSource:
    def __init__(self) -> None:
        self.records: dict[UUID, PrincipalRecord] = {}
        self.loads = 0

    def add(self, record: PrincipalRecord) -> PrincipalRecord:
        self.records[record.user_id] = record
        return record

    async def load(self, user_id: UUID) -> PrincipalRecord | None:
        self.loads += 1
        return self.records.get(user_id)


@get("/me", sync_to_thread=False)
def whoami(request: Request[Principal, Any, Any]) -> dict[str, str]:
    return {"user_id": str(request.user.user_id), "role": request.user.role}


@get("/admin", guards=[admin_only], sync_to_thread=False)
def admin_area() -> str:
    return "ok"


@get("/health/live", sync_to_thread=False)
def live() -> str:
    return "ok"


@get("/healthy", sync_to_thread=False)
def not_under_health() -> str:
    return "ok"


@post("/users", sync_to_thread=False)
def register() -> str:
    return "registered"


@get("/users", sync_to_thread=False)
def list_users() -> str:
    return "users"


@post("/auth/token", status_code=200, sync_to_thread=False)
def login() -> str:
    return "token"


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client: Redis = Redis.from_url(redis_url)  # pyright: ignore[reportUnknownMemberType]
    yield client
    await client.aclose()


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


@pytest.fixture
def tokens() -> Tokens:
    return Tokens(Settings(), key=KEY)


def make_app(tokens: Tokens, source: PrincipalSource | None, redis_url: str) -> Litestar:
    """The test client serves the app on a loop of its own: open its Redis client there."""
    authenticators: list[TokenAuthenticator] = []

    @asynccontextmanager
    async def open_redis(_app: Litestar) -> AsyncIterator[None]:
        client: Redis = Redis.from_url(redis_url)  # pyright: ignore[reportUnknownMemberType]
        if source is not None:
            authenticators.append(TokenAuthenticator(tokens, CachedPrincipals(source, client)))
        try:
            yield
        finally:
            authenticators.clear()
            await client.aclose()

    auth = bearer_auth(
        lambda: authenticators[0] if authenticators else None,
        public_prefixes=["/health", "/schema"],
        public_routes=[("POST", "/users"), ("post", "/auth/token/")],
    )
    return Litestar(
        route_handlers=[whoami, admin_area, live, not_under_health, register, list_users, login],
        middleware=[auth],
        lifespan=[open_redis],
    )


@pytest.fixture
async def client(
    tokens: Tokens, source: FakeSource, redis_url: str
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=make_app(tokens, source, redis_url)) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_good_token_authenticates_its_principal(
    client: AsyncTestClient[Litestar], tokens: Tokens, source: FakeSource
) -> None:
    record = source.add(_record(role="admin"))
    response = await client.get("/me", headers=bearer(tokens.issue(record).access_token))
    assert response.status_code == 200
    assert response.json() == {"user_id": str(record.user_id), "role": "admin"}


def _claims(record: PrincipalRecord, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(record.user_id),
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
        "gen": record.token_generation,
    }
    for name, value in changes.items():
        if value is None:
            claims.pop(name)
        else:
            claims[name] = value
    return claims


def _signed(claims: dict[str, Any], key: str = KEY, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


def _unsigned(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, None, algorithm="none")


def _past() -> int:
    return int((datetime.now(UTC) - timedelta(seconds=5)).timestamp())


TAMPERED: dict[str, Callable[[PrincipalRecord], str]] = {
    "alg-none": lambda r: _unsigned(_claims(r)),
    "other-key": lambda r: _signed(_claims(r), key="o" * 64),
    "other-algorithm": lambda r: _signed(_claims(r), algorithm="HS512"),
    "wrong-audience": lambda r: _signed(_claims(r, aud="someone-else")),
    "wrong-issuer": lambda r: _signed(_claims(r, iss="evil")),
    "expired": lambda r: _signed(_claims(r, exp=_past(), iat=_past() - 60)),
    "missing-exp": lambda r: _signed(_claims(r, exp=None)),
    "missing-iat": lambda r: _signed(_claims(r, iat=None)),
    "missing-iss": lambda r: _signed(_claims(r, iss=None)),
    "missing-aud": lambda r: _signed(_claims(r, aud=None)),
    "missing-sub": lambda r: _signed(_claims(r, sub=None)),
    "missing-gen": lambda r: _signed(_claims(r, gen=None)),
    "old-generation": lambda r: _signed(_claims(r, gen=r.token_generation - 1)),
    "sub-not-a-uuid": lambda r: _signed(_claims(r, sub="admin")),
    "unknown-user": lambda r: _signed(_claims(r, sub=str(uuid.uuid4()))),
    "garbage": lambda _r: "not.a.token",
    "signature-stripped": lambda r: _signed(_claims(r)).rsplit(".", 1)[0] + ".",
}


@pytest.mark.parametrize("make_token", TAMPERED.values(), ids=TAMPERED.keys())
async def test_tampered_tokens_are_refused(
    client: AsyncTestClient[Litestar],
    source: FakeSource,
    make_token: Callable[[PrincipalRecord], str],
) -> None:
    record = source.add(_record(gen=3))
    assert (await client.get("/me", headers=bearer(_signed(_claims(record))))).status_code == 200

    response = await client.get("/me", headers=bearer(make_token(record)))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_inactive_account_is_refused(
    client: AsyncTestClient[Litestar], tokens: Tokens, source: FakeSource
) -> None:
    record = source.add(_record())
    token = tokens.issue(record).access_token
    source.add(PrincipalRecord(record.user_id, "customer", False, record.token_generation))
    assert (await client.get("/me", headers=bearer(token))).status_code == 401


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "Token {token}", "{token}"],
    ids=["empty", "scheme-only", "scheme-space", "basic", "other-scheme", "no-scheme"],
)
async def test_only_bearer_credentials_count(
    client: AsyncTestClient[Litestar], tokens: Tokens, source: FakeSource, header: str
) -> None:
    token = tokens.issue(source.add(_record())).access_token
    response = await client.get("/me", headers={"Authorization": header.format(token=token)})
    assert response.status_code == 401
    assert (await client.get("/me")).status_code == 401
    assert (
        await client.get("/me", headers={"Authorization": f"bearer {token}"})
    ).status_code == 200


async def test_public_paths_and_routes_need_no_token_but_nothing_else_is_open(
    client: AsyncTestClient[Litestar],
) -> None:
    assert (await client.get("/health/live")).status_code == 200
    assert (await client.post("/users")).status_code == 201
    assert (await client.post("/auth/token")).status_code == 200
    assert (await client.get("/users")).status_code == 401  # same path, other method
    assert (await client.get("/healthy")).status_code == 401  # a prefix of a word is not a path
    assert (await client.get("/admin")).status_code == 401


async def test_admin_only_refuses_customers_with_403(
    client: AsyncTestClient[Litestar], tokens: Tokens, source: FakeSource
) -> None:
    customer = tokens.issue(source.add(_record(role="customer"))).access_token
    admin = tokens.issue(source.add(_record(role="admin"))).access_token
    assert (await client.get("/admin", headers=bearer(customer))).status_code == 403
    assert (await client.get("/admin", headers=bearer(admin))).status_code == 200


async def test_without_an_authenticator_every_token_is_refused(
    tokens: Tokens, redis_url: str
) -> None:
    record = _record()
    async with AsyncTestClient(app=make_app(tokens, None, redis_url)) as client:
        response = await client.get("/me", headers=bearer(tokens.issue(record).access_token))
    assert response.status_code == 401


# ------------------------------------------------------------------------------ principal cache


async def test_the_cache_spares_the_source_and_sees_a_deactivation_within_its_ttl(
    client: AsyncTestClient[Litestar], tokens: Tokens, source: FakeSource
) -> None:
    record = source.add(_record())
    headers = bearer(tokens.issue(record).access_token)
    for _ in range(3):
        assert (await client.get("/me", headers=headers)).status_code == 200
    assert source.loads == 1

    source.add(PrincipalRecord(record.user_id, "customer", False, record.token_generation))
    deactivated = time.monotonic()
    while (await client.get("/me", headers=headers)).status_code == 200:
        # Both caches' lives (1 s here, 2 s in Redis) are over within API.md's 5 s.
        assert time.monotonic() - deactivated < 5.0, "still accepted after the caches' TTL"
        await asyncio.sleep(0.1)
    assert source.loads == 2  # one more lookup, once both caches let go


async def test_a_bumped_generation_is_seen_once_the_cache_key_is_forgotten(
    client: AsyncTestClient[Litestar], tokens: Tokens, source: FakeSource, redis: Redis
) -> None:
    record = source.add(_record(gen=1))
    headers = bearer(tokens.issue(record).access_token)
    assert (await client.get("/me", headers=headers)).status_code == 200
    assert await redis.pttl(principal_cache_key(record.user_id)) in range(1, 2001)

    source.add(PrincipalRecord(record.user_id, "customer", True, 2))
    await redis.delete(principal_cache_key(record.user_id))
    await asyncio.sleep(LOCAL_TTL_S)  # what this process holds lives a second at most
    assert (await client.get("/me", headers=headers)).status_code == 401


async def test_a_redis_outage_costs_only_the_cache(source: FakeSource) -> None:
    record = source.add(_record())
    down: Redis = Redis.from_url(  # pyright: ignore[reportUnknownMemberType]
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5
    )
    try:
        assert await CachedPrincipals(source, down).load(record.user_id) == record
    finally:
        await down.aclose()


def test_a_short_configured_secret_is_refused_and_never_echoed() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"SHOP_JWT_SECRET": "hunter2"}, sections=[UsersSettings])
    assert str(refused.value).startswith("SHOP_JWT_SECRET:")
    assert "hunter2" not in str(refused.value)
    read = Settings.from_env({"SHOP_ACCESS_TOKEN_TTL_S": "600"}, sections=[UsersSettings])
    assert Tokens(read, key=KEY).ttl_s == 600


async def test_a_checked_token_is_checked_once_and_refused_once_it_expires(
    client: AsyncTestClient[Litestar], tokens: Tokens, source: FakeSource,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    decoded: list[str] = []
    decode = Tokens.decode

    def counted(self: Tokens, encoded: str) -> Any:
        decoded.append(encoded)
        return decode(self, encoded)

    monkeypatch.setattr(Tokens, "decode", counted)
    record = source.add(_record())
    soon = int((datetime.now(UTC) + timedelta(seconds=2)).timestamp())
    token = _signed(_claims(record, exp=soon))
    for _ in range(3):
        assert (await client.get("/me", headers=bearer(token))).status_code == 200
    assert decoded == [token]  # the signature and claims were checked once
    while time.time() < soon:
        await asyncio.sleep(0.1)
    assert (await client.get("/me", headers=bearer(token))).status_code == 401
