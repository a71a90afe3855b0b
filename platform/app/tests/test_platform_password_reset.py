"""Account recovery (API.md, the two ``/auth/password-reset`` rows), through the whole app:
the served API, the worker and a real SMTP server, on real PostgreSQL, Redis and Mongo-wire.
"""

from __future__ import annotations

import re
import uuid
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from redis import Redis
from sqlalchemy import text

from shop_devkit.app_plugin import TEST_PASSWORD, eventually, new_admin, sign_in
from shop_devkit.mail import MailServer
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine

pytestmark = pytest.mark.usefixtures("shop_worker")

NEW_PASSWORD = "a brand new passphrase"
PROBLEM = "application/problem+json"


@pytest.fixture
def shop_settings(shop_settings: Settings, mail_server: MailServer) -> Settings:
    return shop_settings.with_overrides(
        smtp_url=mail_server.url, event_min_backoff_ms=50, public_url="https://shop.example.com",
        rate_limit_password_reset_per_minute=1000,
        rate_limit_password_reset_per_email_per_hour=1000,
    )  # fmt: skip


async def register(client: httpx.AsyncClient) -> tuple[str, str]:
    email = f"reset-{uuid.uuid4().hex[:10]}@example.com"
    made = await client.post("/users", json={"email": email, "password": TEST_PASSWORD,
                                             "name": "Rosa"})  # fmt: skip
    assert made.status_code == 201, made.text
    return email, made.json()["id"]


async def reset_mails(mail_server: MailServer, email: str, count: int) -> list[EmailMessage]:
    def resets() -> list[EmailMessage]:
        return [m for m in mail_server.catcher.to(email) if "Reset" in str(m["Subject"])]

    async def arrived() -> bool:
        return len(resets()) >= count

    await eventually(arrived, f"{count} reset mail(s) to {email}")
    return resets()


def token_in(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    found = re.search(r"https://shop\.example\.com/password-reset#token=([A-Za-z0-9_-]+)",
                      body.get_content())  # fmt: skip
    assert found is not None, body.get_content()
    return found.group(1)


async def ask(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/auth/password-reset", json={"email": email})


async def confirm(client: httpx.AsyncClient, token: str, password: str) -> httpx.Response:
    return await client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": password}
    )


async def test_a_reset_link_sets_a_new_password_once_and_ends_earlier_sign_ins(
    shop_server: httpx.AsyncClient, mail_server: MailServer
) -> None:
    email, _ = await register(shop_server)
    before = await sign_in(shop_server, email)
    asked = await ask(shop_server, email)
    assert asked.status_code == 202
    [mail] = await reset_mails(mail_server, email, 1)
    token = token_in(mail)
    assert len(token) >= 43  # 256 random bits, URL-safe
    # Registration's rules apply to the new password, and the refusal names the field.
    weak = await confirm(shop_server, token, "short")
    assert weak.status_code == 422
    assert [e["field"] for e in weak.json()["errors"]] == ["new_password"]
    assert (await confirm(shop_server, token, NEW_PASSWORD)).status_code == 204
    assert (await sign_in(shop_server, email, NEW_PASSWORD))["Authorization"]
    refused = await shop_server.post("/auth/token", json={"email": email,
                                                          "password": TEST_PASSWORD})  # fmt: skip
    assert refused.status_code == 401

    async def old_token_refused() -> bool:
        return (await shop_server.get("/users/me", headers=before)).status_code == 401

    await eventually(old_token_refused, "the earlier access token refused", within=5)
    again = await confirm(shop_server, token, "yet another passphrase")
    unknown = await confirm(shop_server, "x" * 43, "yet another passphrase")
    for answer in (again, unknown):
        assert answer.status_code == 400
        assert answer.headers["content-type"].startswith(PROBLEM)
        assert answer.json()["type"] == "/problems/invalid-reset-token"


async def test_unknown_and_known_emails_get_the_same_answer_and_only_a_real_account_mail(
    shop_server: httpx.AsyncClient, mail_server: MailServer
) -> None:
    email, _ = await register(shop_server)
    nobody = f"nobody-{uuid.uuid4().hex[:10]}@example.com"
    known, unknown, malformed = (
        await ask(shop_server, email), await ask(shop_server, nobody),
        await ask(shop_server, "not an email"),
    )  # fmt: skip
    assert known.status_code == unknown.status_code == malformed.status_code == 202
    assert known.json() == unknown.json() == malformed.json()
    await reset_mails(mail_server, email, 1)
    assert mail_server.catcher.to(nobody) == []


async def test_a_newer_request_voids_the_older_token(
    shop_server: httpx.AsyncClient, mail_server: MailServer
) -> None:
    email, _ = await register(shop_server)
    assert (await ask(shop_server, email)).status_code == 202
    [first] = await reset_mails(mail_server, email, 1)
    assert (await ask(shop_server, email)).status_code == 202
    second = (await reset_mails(mail_server, email, 2))[-1]
    assert (await confirm(shop_server, token_in(first), NEW_PASSWORD)).status_code == 400
    assert (await confirm(shop_server, token_in(second), NEW_PASSWORD)).status_code == 204


async def test_the_token_is_kept_only_as_a_digest_and_expires_after_30_minutes(
    shop_server: httpx.AsyncClient, mail_server: MailServer, shop_settings: Settings
) -> None:
    email, user_id = await register(shop_server)
    assert (await ask(shop_server, email)).status_code == 202
    token = token_in((await reset_mails(mail_server, email, 1))[0])
    engine = create_engine(shop_settings)
    try:
        async with engine.begin() as conn:
            rows = (await conn.execute(text(
                "SELECT digest, expires_at - now() AS left FROM users.password_reset_tokens"
                " WHERE user_id = :id"
            ), {"id": user_id})).all()  # fmt: skip
            [(digest, left)] = rows
            assert token not in digest
            assert 29 * 60 < left.total_seconds() <= 30 * 60
            # Half an hour later, as far as the token knows.
            await conn.execute(text(
                "UPDATE users.password_reset_tokens SET expires_at = now() - interval '1 s'"
                " WHERE user_id = :id"
            ), {"id": user_id})  # fmt: skip
    finally:
        await engine.dispose()
    assert (await confirm(shop_server, token, NEW_PASSWORD)).status_code == 400


@pytest.mark.parametrize("ending", ["erased", "deactivated"])
async def test_erasure_and_deactivation_void_an_outstanding_token(
    shop_server: httpx.AsyncClient, mail_server: MailServer, shop_settings: Settings, ending: str
) -> None:
    email, user_id = await register(shop_server)
    me = await sign_in(shop_server, email)
    assert (await ask(shop_server, email)).status_code == 202
    token = token_in((await reset_mails(mail_server, email, 1))[0])
    if ending == "erased":
        assert (await shop_server.delete("/users/me", headers=me)).status_code == 204
    else:
        admin = await new_admin(shop_server, shop_settings)
        off = await shop_server.patch(f"/users/{user_id}", json={"is_active": False}, headers=admin)
        assert off.status_code == 200
    assert (await confirm(shop_server, token, NEW_PASSWORD)).status_code == 400


async def test_requests_are_limited_per_address_and_per_email(
    shop_settings: Settings, redis_url: str
) -> None:
    from litestar.testing import AsyncTestClient  # noqa: PLC0415

    from shop_platform.app import create_app  # noqa: PLC0415

    limited = shop_settings.with_overrides(
        rate_limit_password_reset_per_minute=5, rate_limit_password_reset_per_email_per_hour=3
    )
    forget_counts(redis_url)
    async with AsyncTestClient(app=create_app(limited, configure_logs=False)) as client:
        target = f"target-{uuid.uuid4().hex[:8]}@example.com"
        per_email = [(await ask(cast_client(client), target)).status_code for _ in range(4)]
        assert per_email == [202, 202, 202, 429]
        others = [(await ask(cast_client(client), f"o{n}-{uuid.uuid4().hex[:6]}@example.com"))
                  for n in range(2)]  # fmt: skip
        assert [o.status_code for o in others] == [202, 429]  # 5 from this address a minute
        assert others[1].headers["content-type"].startswith(PROBLEM)
        assert int(others[1].headers["retry-after"]) >= 1
    forget_counts(redis_url)


def cast_client(client: Any) -> httpx.AsyncClient:
    return client  # an AsyncTestClient is an httpx.AsyncClient


def forget_counts(redis_url: str) -> None:
    """The session's Redis keeps other tests' counts for this address: start from none."""
    redis = Redis.from_url(redis_url)
    try:
        for key in redis.scan_iter(match="shop:ratelimit*", count=1000):
            redis.delete(key)
    finally:
        redis.close()
