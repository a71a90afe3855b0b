"""Beanie read models bound to the configured database on a real Mongo-wire server."""

from __future__ import annotations

from typing import Annotated

from beanie import Document, Indexed

from shop_kernel.mongo import create_mongo_client, init_read_models
from shop_kernel.settings import Settings


class ShelfView(Document):
    code: Annotated[str, Indexed(unique=True)]
    name: str

    class Settings:
        name = "shelf_view"


async def test_documents_are_stored_in_the_configured_database_with_their_indexes(
    mongodb_server_url: str, mongodb_database: str
) -> None:
    settings = Settings(mongodb_url=mongodb_server_url, mongodb_database=mongodb_database)
    client = create_mongo_client(settings)
    try:
        await init_read_models(client, settings, [ShelfView], create_indexes=True)
        await ShelfView(code="A-1", name="first").insert()
        found = await ShelfView.find_one(ShelfView.code == "A-1")
        raw = await client[mongodb_database]["shelf_view"].find_one({"code": "A-1"})
        indexes = await client[mongodb_database]["shelf_view"].index_information()
    finally:
        await client.close()
    assert found is not None
    assert found.name == "first"
    assert raw is not None
    assert raw["name"] == "first"
    assert any(index.get("unique") for index in indexes.values())
