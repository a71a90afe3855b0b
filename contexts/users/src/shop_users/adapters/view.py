"""The ``user_directory`` read view: what ``GET /users`` and ``GET /users/{id}`` return.

Its documents are written only by the projector (the account as the write store holds it,
newest version wins) and by a rebuild from the write store. An erased account stays as a
tombstone without personal data, so that a late, older event cannot bring it back; queries
never return tombstones.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, ClassVar

from beanie import Document
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.messaging.projection import apply_if_newer
from shop_kernel.mongo import ReadStore
from shop_kernel.pages import keyset_page
from shop_users.adapters.sql import users
from shop_users_contract import UserState

COLLECTION = "user_directory"


class UserDirectoryEntry(Document):
    """The view's document, as the API shows a user (plus lower-cased search keys)."""

    id: str  # pyright: ignore[reportIncompatibleVariableOverride, reportGeneralTypeIssues] - a user id
    email: str | None
    name: str | None
    name_key: str | None
    role: str
    is_active: bool
    created_at: datetime
    erased: bool
    version: int

    class Settings:
        name = COLLECTION
        # Prefix searches ("^abc" on a lower-cased key) are index range scans.
        indexes: ClassVar[list[IndexModel]] = [
            IndexModel([("name_key", ASCENDING), ("_id", ASCENDING)]),
            IndexModel([("email", ASCENDING), ("_id", ASCENDING)]),
            IndexModel([("role", ASCENDING), ("_id", ASCENDING)]),
        ]


def _fields(state: dict[str, Any]) -> dict[str, Any]:
    name: str | None = state["name"]
    return {
        "email": state["email"],
        "name": name,
        "name_key": name.casefold() if name is not None else None,
        "role": state["role"],
        "is_active": state["is_active"],
        "created_at": state["created_at"],
        "erased": state["erased"],
    }


class UserDirectoryProjector:
    """Brings the account's document up to what the write store holds now.

    Events carry nothing personal, so the projector reads the account (by id, one row) and
    writes it at the row's version: the newest state wins whichever event brought the news.
    """

    def __init__(self, store: ReadStore, engine: AsyncEngine) -> None:
        self._view: AsyncCollection[dict[str, Any]] = store.collection(COLLECTION)
        self._source = UserDirectorySource(engine)

    async def __call__(self, event: UserState) -> None:
        async for document in self._source.documents([str(event.user_id)]):
            key, version = document.pop("_id"), document.pop("version")
            await apply_if_newer(self._view, key, version, document)


class UserDirectorySource:
    """The accounts as the write store knows them, shaped like the view's documents."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())

    async def documents(self, keys: Sequence[str] | None = None) -> AsyncIterator[dict[str, Any]]:
        query = select(users)
        if keys is not None:
            query = query.where(users.c.id.in_([uuid.UUID(key) for key in keys]))
        async with self._engine.connect() as conn:
            rows = await conn.stream(query)
            async for row in rows:
                state = {
                    "email": row.email,
                    "name": row.name,
                    "role": row.role,
                    "is_active": row.is_active,
                    "created_at": row.created_at,
                    "erased": row.erased_at is not None,
                }
                yield {"_id": str(row.id), **_fields(state), "version": row.version}


def is_user_id(key: str) -> bool:
    try:
        return str(uuid.UUID(key)) == key
    except ValueError:
        return False


class UserDirectory:
    """Queries of the view; ordered by id, so pages never skip or repeat an entry."""

    def __init__(self, store: ReadStore) -> None:
        self._view: AsyncCollection[dict[str, Any]] = store.collection(COLLECTION)

    async def get(self, user_id: uuid.UUID) -> dict[str, Any] | None:
        return await self._view.find_one({"_id": str(user_id), "erased": False})

    async def search(
        self, *, q: str | None, role: str | None, limit: int, after: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        query: dict[str, Any] = {"erased": False}
        if q:
            # Names are kept casefolded, emails lower-cased (as the write store has them).
            query["$or"] = [
                {"name_key": {"$regex": "^" + re.escape(q.casefold())}},
                {"email": {"$regex": "^" + re.escape(q.lower())}},
            ]
        if role is not None:
            query["role"] = role
        if after is not None:
            query["_id"] = {"$gt": after}
        found = self._view.find(query).sort("_id", ASCENDING).limit(limit + 1)
        return keyset_page([doc async for doc in found], limit, key=lambda doc: doc["_id"])
