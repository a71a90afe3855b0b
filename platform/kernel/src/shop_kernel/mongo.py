"""The MongoDB read store: one client per process and event loop, Beanie bound to it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

from beanie import Document, init_beanie  # pyright: ignore[reportUnknownVariableType]
from pymongo import AsyncMongoClient

from shop_kernel.settings import Settings

MongoClient: TypeAlias = AsyncMongoClient[dict[str, object]]


def mongodb_url(settings: Settings) -> str:
    return settings.require("mongodb_url")


def create_mongo_client(settings: Settings, *, timeout_ms: int = 5000) -> MongoClient:
    return AsyncMongoClient(
        mongodb_url(settings),
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        tz_aware=True,
        appname="shop",
    )


async def init_read_models(
    client: MongoClient,
    settings: Settings,
    document_models: Sequence[type[Document]],
    *,
    create_indexes: bool = True,
) -> None:
    """Bind Beanie documents to the configured database; indexes are made once per deploy."""
    if not document_models:
        return
    await init_beanie(
        database=client[settings.mongodb_database],
        document_models=list(document_models),
        skip_indexes=not create_indexes,
    )
