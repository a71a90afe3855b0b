"""Fixtures of the backbone's tests: a context of their own, its stores and its workers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from backbone_support import EFFECTS_DDL, shelf_module
from pymongo import AsyncMongoClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine


@pytest.fixture
def settings(shop_settings: Settings) -> Settings:
    return shop_settings.with_overrides(event_max_retries=2, event_min_backoff_ms=50)


@pytest.fixture
def module() -> ContextModule:
    return shelf_module(f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    async with engine.begin() as conn:
        for statement in EFFECTS_DDL:
            await conn.execute(text(statement))
    yield engine
    await engine.dispose()


@pytest.fixture
async def views(settings: Settings) -> AsyncIterator[Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    yield client[settings.mongodb_database]["backbone_shelves"]
    await client.close()
