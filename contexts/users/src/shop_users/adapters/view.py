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

import msgspec
from beanie import Document
from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.messaging.projection import ViewWrite, apply_newest
from shop_kernel.mongo import ReadStore
from shop_kernel.pages import keyset_page
from shop_users.adapters.sql import user_from_row, users
from shop_users.adapters.translations import user_snapshot
from shop_users.domain.model import User
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


def document(user: User) -> dict[str, Any]:
    """The view's document of an account: its snapshot as it is (its id as ``_id``) and the
    key names are searched on; of an erased one, a tombstone without personal data (so that
    a late event cannot bring the account back)."""
    if user.is_erased:
        return {
            "email": None, "name": None, "name_key": None, "role": user.role.value,
            "is_active": user.is_active, "created_at": user.created_at, "erased": True,
        }  # fmt: skip
    snapshot = user_snapshot(user)
    fields = msgspec.to_builtins(snapshot, builtin_types=(datetime,))
    del fields["id"]
    return {**fields, "name_key": snapshot.name.casefold(), "erased": False}


class UserDirectoryProjector:
    """Brings the account's document up to what the write store holds now.

    Events carry nothing personal, so the projector reads the account (by id, one row) and
    writes it at the row's version: the newest state wins whichever event brought the news.
    """

    def __init__(self, store: ReadStore, engine: AsyncEngine) -> None:
        self._view: AsyncCollection[dict[str, Any]] = store.collection(COLLECTION)
        self._source = UserDirectorySource(engine)

    async def __call__(self, events: Sequence[UserState]) -> None:
        wanted = sorted({str(event.user_id) for event in events})
        writes = [
            ViewWrite(document.pop("_id"), document.pop("version"), document)
            async for document in self._source.documents(wanted)
        ]
        await apply_newest(self._view, writes)


class UserDirectorySource:
    """The accounts as the write store knows them, as the view's documents."""

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
                user = user_from_row(row)
                yield {"_id": str(user.id), **document(user), "version": user.version}


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
