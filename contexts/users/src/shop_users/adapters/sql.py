"""SQLAlchemy Core tables of the ``users`` schema, and the repository that maps their rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    Row,
    Table,
    Text,
    Uuid,
    delete,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.idempotency import forget_answers_about
from shop_kernel.messaging.outbox import forget_in_outbox
from shop_kernel.sql import update_versioned
from shop_kernel.unit_of_work import UnitOfWork
from shop_users.adapters.tokens import PrincipalRecord
from shop_users.domain.model import DisplayName, EmailAddress, EmailAlreadyRegistered, Role, User
from shop_users_contract import Contact

metadata = MetaData(schema="users")

users = Table(
    "users",
    metadata,
    Column("id", Uuid, primary_key=True),
    # Lower-cased by EmailAddress, so a plain unique index is case-insensitive; NULL once erased.
    Column("email", Text, nullable=True, unique=True),
    Column("name", Text, nullable=True),
    Column("password_hash", Text, nullable=True),
    Column("role", Text, nullable=False),
    Column("is_active", Boolean, nullable=False),
    Column("token_generation", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("erased_at", DateTime(timezone=True), nullable=True),
    Column("version", Integer, nullable=False),
    CheckConstraint("role IN ('customer', 'admin')", name="users_role_known"),
    CheckConstraint("email = lower(email)", name="users_email_lower_case"),
)


# At most one valid reset token per account, kept as its SHA-256 (shop_users.application.resets).
password_reset_tokens = Table(
    "password_reset_tokens",
    metadata,
    Column("digest", Text, primary_key=True),
    Column(
        "user_id", Uuid, ForeignKey("users.users.id", ondelete="CASCADE"),
        nullable=False, unique=True,
    ),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)  # fmt: skip


# What the events of earlier releases carried about a person (shop_users_contract's ``.v1``
# events), blanked in the outbox when the account is erased.
PERSONAL_FIELDS = ("email", "name")


def user_from_row(row: Row[Any]) -> User:
    return User(
        id=row.id,
        email=EmailAddress(row.email) if row.email is not None else None,
        name=DisplayName(row.name) if row.name is not None else None,
        password_hash=row.password_hash,
        role=Role(row.role),
        is_active=row.is_active,
        token_generation=row.token_generation,
        created_at=row.created_at,
        erased_at=row.erased_at,
        version=row.version,
    )


def _values(user: User) -> dict[str, Any]:
    return {
        "email": user.email.value if user.email is not None else None,
        "name": user.name.value if user.name is not None else None,
        "password_hash": user.password_hash,
        "role": user.role.value,
        "is_active": user.is_active,
        "token_generation": user.token_generation,
        "erased_at": user.erased_at,
    }


def _is_email_clash(error: IntegrityError) -> bool:
    return "users_email_key" in str(error.orig)


class SqlUserRepository:
    """The ``UserRepository``: each call runs in the given unit of work's transaction."""

    async def get(self, uow: UnitOfWork, user_id: uuid.UUID) -> User | None:
        return await _one(uow, select(users).where(users.c.id == user_id))

    async def get_by_email(self, uow: UnitOfWork, email: EmailAddress) -> User | None:
        return await _one(uow, select(users).where(users.c.email == email.value))

    async def add(self, uow: UnitOfWork, user: User) -> None:
        values = {**_values(user), "id": user.id, "created_at": user.created_at, "version": 1}
        user.saved_as(1)
        try:
            await uow.write(users, user, values=values)
        except IntegrityError as error:
            if _is_email_clash(error):
                raise EmailAlreadyRegistered from None
            raise

    async def save(self, uow: UnitOfWork, user: User) -> None:
        connection = uow.connection
        try:
            await update_versioned(
                uow, users, {"id": user.id}, user, _values(user), name=str(user.id)
            )
        except IntegrityError as error:
            if _is_email_clash(error):
                raise EmailAlreadyRegistered from None
            raise
        if not user.can_sign_in:  # deactivated or erased: no way back in by a reset link
            await connection.execute(
                delete(password_reset_tokens).where(password_reset_tokens.c.user_id == user.id)
            )
        if user.is_erased:
            await forget_in_outbox(connection, str(user.id), PERSONAL_FIELDS)
            await forget_answers_about(connection, user.id)


async def _one(uow: UnitOfWork, statement: Any) -> User | None:
    row = (await uow.connection.execute(statement)).first()
    if row is None:
        return None
    user = user_from_row(row)
    uow.track(user)
    return user


class SqlResetTokens:
    """The ``ResetTokens`` digests, in the given unit of work's transaction."""

    async def replace(
        self, uow: UnitOfWork, user_id: uuid.UUID, digest: str, expires_at: datetime
    ) -> None:
        statement = pg_insert(password_reset_tokens).values(
            digest=digest, user_id=user_id, expires_at=expires_at
        )
        await uow.connection.execute(
            statement.on_conflict_do_update(
                index_elements=[password_reset_tokens.c.user_id],
                set_={"digest": statement.excluded.digest,
                      "expires_at": statement.excluded.expires_at},
            )
        )  # fmt: skip

    async def take(self, uow: UnitOfWork, digest: str) -> uuid.UUID | None:
        taken = await uow.connection.execute(
            delete(password_reset_tokens)
            .where(password_reset_tokens.c.digest == digest)
            .returning(password_reset_tokens.c.user_id, password_reset_tokens.c.expires_at)
        )
        row = taken.first()
        if row is None or row.expires_at <= datetime.now(UTC):
            return None
        return row.user_id

    async def valid(self, uow: UnitOfWork, digest: str) -> bool:
        found = await uow.connection.execute(
            select(password_reset_tokens.c.digest).where(
                password_reset_tokens.c.digest == digest,
                password_reset_tokens.c.expires_at > func.now(),
            )
        )
        return found.first() is not None


class SqlPrincipalSource:
    """Who a token's subject is now: role, and whether their tokens may still be used."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def load(self, user_id: uuid.UUID) -> PrincipalRecord | None:
        statement = select(
            users.c.role, users.c.is_active, users.c.erased_at, users.c.token_generation
        ).where(users.c.id == user_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(statement)).first()
        if row is None:
            return None
        return PrincipalRecord(
            user_id=user_id,
            role=Role(row.role).value,
            is_active=row.is_active and row.erased_at is None,
            token_generation=row.token_generation,
        )


class SqlUserContacts:
    """``UserContacts`` from the write store: the address as it is now, none once erased."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def contact(self, user_id: uuid.UUID) -> Contact | None:
        statement = select(users.c.email, users.c.name).where(
            users.c.id == user_id, users.c.erased_at.is_(None)
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(statement)).first()
        if row is None or row.email is None or row.name is None:
            return None
        return Contact(email=row.email, name=row.name)
