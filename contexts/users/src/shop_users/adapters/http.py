"""The ``/users`` and ``/auth/token`` routes of API.md: bodies in, use cases called, views out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from shop_kernel.auth import Principal, PrincipalRecord, Tokens, admin_only
from shop_kernel.di import provide
from shop_kernel.idempotency import IdempotencyKey, concerning, idempotent
from shop_kernel.pages import Cursor, Limit, SearchText, page_start
from shop_users.adapters.directory import UserDirectory, is_user_id
from shop_users.application.accounts import Accounts
from shop_users.domain.model import EMAIL_MAX, NAME_MAX, Role, User
from shop_users.domain.passwords import PASSWORD_MAX

# Limits on what is read at all; the domain then applies the real rules (trimming, policy).
Email = Annotated[str, msgspec.Meta(max_length=EMAIL_MAX + 64)]
Name = Annotated[str, msgspec.Meta(max_length=NAME_MAX * 4)]
Password = Annotated[str, msgspec.Meta(max_length=PASSWORD_MAX * 4)]
RoleName = Literal["customer", "admin"]


class NewUser(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password
    name: Name


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    email: Email
    password: Password


class ProfileChange(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    email: Email | None = None


class PasswordChange(msgspec.Struct, forbid_unknown_fields=True):
    current_password: Password
    new_password: Password


class Administration(msgspec.Struct, forbid_unknown_fields=True):
    role: RoleName | None = None
    is_active: bool | None = None


class UserOut(msgspec.Struct):
    id: uuid.UUID
    email: str
    name: str
    role: RoleName
    is_active: bool
    created_at: datetime


class UserPage(msgspec.Struct):
    items: list[UserOut]
    next_cursor: str | None


class AccessToken(msgspec.Struct):
    access_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the scheme's name, not a secret


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email.value if user.email is not None else "",
        name=user.name.value if user.name is not None else "",
        role=user.role.value,
        is_active=user.is_active,
        created_at=user.created_at,
    )


def _entry_out(entry: dict[str, Any]) -> UserOut:
    return UserOut(
        id=uuid.UUID(entry["_id"]),
        email=entry["email"] or "",
        name=entry["name"] or "",
        role=entry["role"],
        is_active=entry["is_active"],
        created_at=entry["created_at"],
    )


def record_of(user: User) -> PrincipalRecord:
    return PrincipalRecord(
        user_id=user.id,
        role=user.role.value,
        is_active=user.can_sign_in,
        token_generation=user.token_generation,
    )


Me = Request[Principal, Any, Any]


class SignIn(Controller):
    path = "/auth"
    tags = ("users",)
    dependencies = {"accounts": provide(Accounts), "tokens": provide(Tokens)}  # noqa: RUF012

    @post("/token", status_code=HTTP_200_OK, exclude_from_auth=True)
    async def token(
        self,
        data: JSONBody[Credentials],
        accounts: NamedDependency[Accounts],
        tokens: NamedDependency[Tokens],
    ) -> AccessToken:
        """Exchange an email and password for a short-lived bearer token."""
        user = await accounts.authenticate(data.email, data.password)
        issued = tokens.issue(record_of(user))
        return AccessToken(access_token=issued.access_token, expires_in=issued.expires_in)


class UsersController(Controller):
    path = "/users"
    tags = ("users",)
    dependencies = {"accounts": provide(Accounts), "directory": provide(UserDirectory)}  # noqa: RUF012

    @post("/", exclude_from_auth=True, middleware=[idempotent])
    async def register(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[NewUser],
        accounts: NamedDependency[Accounts],
        idempotency_key: IdempotencyKey = None,
    ) -> UserOut:
        """Open a customer account."""
        user = await accounts.register(data.email, data.password, data.name)
        concerning(request.scope, user.id)  # the kept answer names the person: erased with them
        return user_out(user)

    @get("/me")
    async def me(self, request: Me, accounts: NamedDependency[Accounts]) -> UserOut:
        """The caller's own profile, from the write store (current at once)."""
        return user_out(await accounts.profile(request.user.user_id))

    @patch("/me")
    async def change_me(
        self, request: Me, data: JSONBody[ProfileChange], accounts: NamedDependency[Accounts]
    ) -> UserOut:
        user = await accounts.change_profile(request.user.user_id, name=data.name, email=data.email)
        return user_out(user)

    @post("/me/password", status_code=HTTP_204_NO_CONTENT)
    async def change_password(
        self, request: Me, data: JSONBody[PasswordChange], accounts: NamedDependency[Accounts]
    ) -> None:
        await accounts.change_password(
            request.user.user_id, data.current_password, data.new_password
        )

    @delete("/me", status_code=HTTP_204_NO_CONTENT)
    async def erase_me(self, request: Me, accounts: NamedDependency[Accounts]) -> None:
        """Erase the caller's personal data everywhere; the account cannot sign in again."""
        await accounts.erase(request.user.user_id)

    @get("/", guards=[admin_only])
    async def directory_page(
        self,
        directory: NamedDependency[UserDirectory],
        q: SearchText = None,
        role: Annotated[RoleName | None, QueryParameter()] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> UserPage:
        """Search the user directory (admins): prefix of name or email, and role."""
        after = page_start(q, cursor, valid_key=is_user_id)
        entries, next_cursor = await directory.search(q=q, role=role, limit=limit, after=after)
        return UserPage(items=[_entry_out(e) for e in entries], next_cursor=next_cursor)

    @get("/{user_id:uuid}")
    async def one(
        self, request: Me, user_id: FromPath[uuid.UUID], directory: NamedDependency[UserDirectory]
    ) -> UserOut:
        """A user from the directory: admins see anyone, a customer only themself."""
        if not request.user.is_admin and request.user.user_id != user_id:
            raise NotFoundException("no such user")
        entry = await directory.get(user_id)
        if entry is None:
            raise NotFoundException("no such user")
        return _entry_out(entry)

    @patch("/{user_id:uuid}", guards=[admin_only])
    async def administer(
        self,
        user_id: FromPath[uuid.UUID],
        data: JSONBody[Administration],
        accounts: NamedDependency[Accounts],
    ) -> UserOut:
        """Change a user's role or deactivate/reactivate them (admins)."""
        role = Role(data.role) if data.role is not None else None
        return user_out(await accounts.administer(user_id, role=role, is_active=data.is_active))
