"""The ``/users`` and ``/auth/token`` routes of API.md: bodies in, use cases called, views out."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT
from redis.asyncio import Redis

from shop_kernel.auth import Principal, admin_only
from shop_kernel.di import provide
from shop_kernel.idempotency import IdempotencyKey, concerning, idempotent
from shop_kernel.log import get_logger
from shop_kernel.pages import NO_CONTROL_CHARACTERS, Cursor, Limit, SearchText, page_start
from shop_kernel.rate_limits import RateLimiter, too_many_requests
from shop_kernel.unit_of_work import UnitOfWork
from shop_users.adapters.tokens import PrincipalRecord, Tokens
from shop_users.adapters.translations import user_snapshot
from shop_users.adapters.view import UserDirectory, is_user_id
from shop_users.application.accounts import Accounts
from shop_users.application.resets import PasswordResets
from shop_users.domain.model import EMAIL_MAX, NAME_MAX, Role, User
from shop_users.domain.passwords import PASSWORD_MAX
from shop_users.settings import UsersSettings
from shop_users_contract import UserSnapshot

log = get_logger(__name__)

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


class UserPage(msgspec.Struct):
    items: list[UserSnapshot]
    next_cursor: str | None


class AccessToken(msgspec.Struct):
    access_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 - the scheme's name, not a secret


def _entry_out(entry: dict[str, Any]) -> UserSnapshot:
    return msgspec.convert({**entry, "id": entry["_id"]}, UserSnapshot)


def record_of(user: User) -> PrincipalRecord:
    return PrincipalRecord(
        user_id=user.id,
        role=user.role.value,
        is_active=user.can_sign_in,
        token_generation=user.token_generation,
    )


Me = Request[Principal, Any, Any]


class ResetRequest(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(max_length=EMAIL_MAX + 64, pattern=NO_CONTROL_CHARACTERS)]


class ResetConfirmation(msgspec.Struct, forbid_unknown_fields=True):
    # The form of the tokens this service sends (URL-safe base64 of 32 random bytes).
    token: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{43}$")]
    new_password: Password


class ResetAccepted(msgspec.Struct):
    detail: str


RESET_ACCEPTED = ResetAccepted(
    detail="If an account can sign in with this email, a reset link is on its way to it."
)


class ResetLimits:
    """Reset requests per client address and per email (the same for unknown emails, so a
    refusal tells nothing), and confirmations per client address."""

    def __init__(self, redis: Redis, settings: UsersSettings) -> None:
        per_address = (settings.rate_limit_password_reset_per_minute, 60)
        self._address = RateLimiter(redis, per_address, name="password-reset:address")
        self._email = RateLimiter(
            redis, (settings.rate_limit_password_reset_per_email_per_hour, 3600),
            name="password-reset:email",
        )  # fmt: skip
        self._confirm = RateLimiter(redis, per_address, name="password-reset-confirm:address")

    async def request(self, address: str, email: str) -> None:
        decision = await self._address.hit(address)
        if not decision.allowed:
            raise too_many_requests(decision)
        decision = await self._email.hit(email.strip().lower())
        if not decision.allowed:
            raise too_many_requests(decision, what="this email")

    async def confirm(self, address: str) -> None:
        decision = await self._confirm.hit(address)
        if not decision.allowed:
            raise too_many_requests(decision)


def _address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


async def _request_reset(resets: PasswordResets, uow: UnitOfWork, email: str) -> None:
    try:
        await resets.request(uow, email)
    except Exception as exc:  # noqa: BLE001 - after the answer: logged, the caller may ask again
        # The type only: a driver's message would carry the statement's parameters (the email).
        log.warning("password reset request not recorded", error=type(exc).__name__)


class PasswordReset(Controller):
    path = "/auth/password-reset"
    tags = ("users",)
    dependencies = {"resets": provide(PasswordResets), "limits": provide(ResetLimits)}  # noqa: RUF012

    @post("/", status_code=HTTP_202_ACCEPTED, exclude_from_auth=True)
    async def request_reset(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ResetRequest],
        resets: NamedDependency[PasswordResets],
        limits: NamedDependency[ResetLimits],
        uow: NamedDependency[UnitOfWork],
    ) -> Response[ResetAccepted]:
        """Email a reset link to the account, if there is one that can sign in.

        The answer is the same, and leaves as soon, whether or not the account exists: it
        is sent before the account is looked up."""
        await limits.request(_address(request), data.email)
        return Response(
            RESET_ACCEPTED,
            status_code=HTTP_202_ACCEPTED,
            background=BackgroundTask(_request_reset, resets, uow, data.email),
        )

    @post("/confirm", status_code=HTTP_204_NO_CONTENT, exclude_from_auth=True)
    async def confirm_reset(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[ResetConfirmation],
        resets: NamedDependency[PasswordResets],
        limits: NamedDependency[ResetLimits],
        uow: NamedDependency[UnitOfWork],
    ) -> None:
        """Set a new password with the token from the link; earlier sign-ins end."""
        await limits.confirm(_address(request))
        await resets.reset(uow, data.token, data.new_password)


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
        uow: NamedDependency[UnitOfWork],
    ) -> AccessToken:
        """Exchange an email and password for a short-lived bearer token."""
        user = await accounts.authenticate(uow, data.email, data.password)
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
        uow: NamedDependency[UnitOfWork],
        idempotency_key: IdempotencyKey = None,
    ) -> UserSnapshot:
        """Open a customer account."""
        user = await accounts.register(uow, data.email, data.password, data.name)
        concerning(request.scope, user.id)  # the kept answer names the person: erased with them
        return user_snapshot(user)

    @get("/me")
    async def me(
        self, request: Me, accounts: NamedDependency[Accounts], uow: NamedDependency[UnitOfWork]
    ) -> UserSnapshot:
        """The caller's own profile, from the write store (current at once)."""
        return user_snapshot(await accounts.profile(uow, request.user.user_id))

    @patch("/me")
    async def change_me(
        self,
        request: Me,
        data: JSONBody[ProfileChange],
        accounts: NamedDependency[Accounts],
        uow: NamedDependency[UnitOfWork],
    ) -> UserSnapshot:
        user = await accounts.change_profile(
            uow, request.user.user_id, name=data.name, email=data.email
        )
        return user_snapshot(user)

    @post("/me/password", status_code=HTTP_204_NO_CONTENT)
    async def change_password(
        self,
        request: Me,
        data: JSONBody[PasswordChange],
        accounts: NamedDependency[Accounts],
        uow: NamedDependency[UnitOfWork],
    ) -> None:
        await accounts.change_password(
            uow, request.user.user_id, data.current_password, data.new_password
        )

    @delete("/me", status_code=HTTP_204_NO_CONTENT)
    async def erase_me(
        self, request: Me, accounts: NamedDependency[Accounts], uow: NamedDependency[UnitOfWork]
    ) -> None:
        """Erase the caller's personal data everywhere; the account cannot sign in again."""
        await accounts.erase(uow, request.user.user_id)

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
    ) -> UserSnapshot:
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
        uow: NamedDependency[UnitOfWork],
    ) -> UserSnapshot:
        """Change a user's role or deactivate/reactivate them (admins)."""
        role = Role(data.role) if data.role is not None else None
        return user_snapshot(
            await accounts.administer(uow, user_id, role=role, is_active=data.is_active)
        )
