"""Idempotency-Key on POST /products: keys are kept per caller (API.md conventions)."""

from __future__ import annotations

import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient

from shop_kernel.settings import Settings
from shop_platform.admins import create_admin

Client = AsyncTestClient[Litestar]
PASSWORD = "correct horse battery"


async def test_keys_belong_to_their_caller(shop_client: Client, shop_settings: Settings) -> None:
    tokens = []
    for _ in range(2):
        address = f"admin-{uuid.uuid4().hex[:8]}@example.com"
        await create_admin(shop_settings, address, PASSWORD)
        login = await shop_client.post("/auth/token", json={"email": address, "password": PASSWORD})
        tokens.append({"Authorization": f"Bearer {login.json()['access_token']}"})
    key = uuid.uuid4().hex
    made = []
    for headers in tokens:
        sku = f"IDEM-{uuid.uuid4().hex[:8].upper()}"
        body = {"sku": sku, "name": "Cup", "price": {"amount": 100, "currency": "EUR"}, "stock": 1}
        response = await shop_client.post(
            "/products", json=body, headers={**headers, "Idempotency-Key": key}
        )
        made.append((response.status_code, response.headers.get("idempotent-replayed")))
    assert made == [(201, None), (201, None)]


async def test_the_openapi_document_shows_the_header_on_creating_products(
    shop_client: Client,
) -> None:
    paths = (await shop_client.get("/schema/openapi.json")).json()["paths"]
    names = {parameter["name"] for parameter in paths["/products"]["post"].get("parameters", [])}
    assert "Idempotency-Key" in names
