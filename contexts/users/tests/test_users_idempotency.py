"""Idempotency-Key on creating POSTs (API.md conventions), shown on POST /users."""

from __future__ import annotations

import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from shop_kernel.idempotency import key_digest, lock_id
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine

Client = AsyncTestClient[Litestar]
PASSWORD = "correct horse battery"


def registration() -> dict[str, str]:
    return {"email": f"idem-{uuid.uuid4().hex[:10]}@example.com", "password": PASSWORD, "name": "I"}


async def test_a_repeated_registration_gets_the_first_answer_and_creates_nothing(
    shop_client: Client,
) -> None:
    body, key = registration(), {"Idempotency-Key": uuid.uuid4().hex}
    first = await shop_client.post("/users", json=body, headers=key)
    again = await shop_client.post("/users", json=body, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()  # the same user, not a 409 for a taken email
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["content-type"] == first.headers["content-type"]


async def test_the_same_key_with_another_body_is_refused(shop_client: Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    assert (await shop_client.post("/users", json=registration(), headers=key)).status_code == 201
    other = await shop_client.post("/users", json=registration(), headers=key)
    assert other.status_code == 422
    assert other.headers["content-type"].startswith("application/problem+json")


async def test_a_key_over_255_characters_is_a_bad_request(shop_client: Client) -> None:
    response = await shop_client.post(
        "/users", json=registration(), headers={"Idempotency-Key": "k" * 256}
    )
    assert response.status_code == 400
    fits = await shop_client.post(
        "/users", json=registration(), headers={"Idempotency-Key": "k" * 255}
    )
    assert fits.status_code == 201


async def test_a_repeat_while_the_first_still_runs_is_a_conflict(
    shop_client: Client, shop_settings: Settings
) -> None:
    key, body = uuid.uuid4().hex, registration()
    lock = lock_id("address-testclient", key_digest("/users", key))
    engine = create_engine(shop_settings)
    try:  # what the first request holds while it runs: the advisory lock of its key
        async with engine.connect() as first:
            await first.begin()
            await first.execute(text("SELECT pg_advisory_xact_lock(:lock)"), {"lock": lock})
            running = await shop_client.post("/users", json=body, headers={"Idempotency-Key": key})
            assert running.status_code == 409
            assert running.headers["content-type"].startswith("application/problem+json")
            await first.rollback()
    finally:
        await engine.dispose()
    after = await shop_client.post("/users", json=body, headers={"Idempotency-Key": key})
    assert after.status_code == 201  # the 409 kept nothing


async def test_the_openapi_document_shows_the_header_on_registration(
    shop_client: Client,
) -> None:
    paths = (await shop_client.get("/schema/openapi.json")).json()["paths"]
    names = {parameter["name"] for parameter in paths["/users"]["post"].get("parameters", [])}
    assert "Idempotency-Key" in names
