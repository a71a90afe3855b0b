"""The MongoDB read store: one client per process and event loop, Beanie bound to it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from beanie import Document, init_beanie  # pyright: ignore[reportUnknownVariableType]
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from shop_kernel.log import get_logger
from shop_kernel.settings import Settings

log = get_logger(__name__)

MongoClient: TypeAlias = AsyncMongoClient[dict[str, object]]


def mongodb_url(settings: Settings) -> str:
    return settings.require("mongodb_url")


def create_mongo_client(settings: Settings) -> MongoClient:
    """A client whose every operation is bounded by ``SHOP_MONGODB_TIMEOUT`` (pymongo's
    ``timeoutMS``): choosing the server, waiting for a pooled connection, the round trip and
    the server's own work (``maxTimeMS``), each find and getMore of a cursor on its own. A
    server that stops answering costs a timeout error, not a request held forever."""
    timeout_ms = round(settings.mongodb_timeout * 1000)
    return AsyncMongoClient(
        mongodb_url(settings),
        timeoutMS=timeout_ms,
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
    try:
        await init_beanie(
            database=client[settings.mongodb_database],
            document_models=list(document_models),
            skip_indexes=not create_indexes,
        )
    except PyMongoError as exc:
        # Start anyway: readiness reports MongoDB down, and the next start makes the indexes.
        # (Views are read and written through ReadStore, which needs no Beanie binding.)
        log.warning("read models not initialised: MongoDB unreachable", error=repr(exc))


@dataclass(frozen=True)
class ReadStore:
    """The read views' database through this process's client (bound to its event loop).

    Views are reached through this, not through Beanie's class-level binding, which is one
    per process and would follow whichever client bound last.
    """

    database: AsyncDatabase[dict[str, Any]]

    def collection(self, name: str) -> AsyncCollection[dict[str, Any]]:
        return self.database[name]
