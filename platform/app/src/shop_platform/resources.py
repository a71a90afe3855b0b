"""The process-wide clients (PostgreSQL, MongoDB, Redis), opened on the running event loop."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.mongo import MongoClient, create_mongo_client, init_read_models
from shop_kernel.redis_client import create_redis
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_platform.contexts import CONTEXTS


@dataclass(frozen=True)
class Resources:
    engine: AsyncEngine
    mongo: MongoClient
    redis: Redis


@asynccontextmanager
async def open_resources(
    settings: Settings, *, role: str, create_indexes: bool = False, long_running: bool = False
) -> AsyncGenerator[Resources]:
    """Clients bind to the loop they are made on: call this inside the loop that uses them.

    Every call through them is bounded (see the settings' timeouts); ``long_running`` (a
    rebuild) lifts PostgreSQL's bounds on statements and transactions (see create_engine).
    """
    # The API and the worker skip the ping (see create_engine); the CLI's short runs keep it.
    engine = create_engine(
        settings,
        application_name=f"shop-{role}",
        pre_ping=role not in {"api", "worker"},
        long_running=long_running,
    )
    mongo = create_mongo_client(settings)
    redis = create_redis(settings)
    try:
        documents = [doc for context in CONTEXTS for doc in context.document_models]
        await init_read_models(mongo, settings, documents, create_indexes=create_indexes)
        yield Resources(engine, mongo, redis)
    finally:
        await redis.aclose()
        await mongo.close()
        await engine.dispose()
