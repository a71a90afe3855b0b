"""The users context's published language: the only code other contexts may import.

Every event carries the account's public state after the change (event-carried state) but
nothing personal: no email and no name. Events are kept (the outbox, queues, dead letters)
longer than an erasure may wait, so what identifies a person never enters them; whoever
must write to a person asks for the address when it writes, through :class:`UserContacts`,
and an erased account has none.

The ``.v1`` events of earlier releases carried the email and the name; they are still read
(what is in flight during a deploy, dead letters replayed) as the current shapes, never
written.

An account has one shape for whoever may see it, :class:`UserSnapshot`: what the user
directory stores and the API answers. Its events carry only its public part (the fields of
:class:`UserState`), never the email or the name.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import ClassVar, Literal, Protocol

import msgspec

from shop_kernel.messaging.events import IntegrationEvent, LegacyEvent

RoleName = Literal["customer", "admin"]


class UserSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """An account as the API shows it: never a password or its hash."""

    id: uuid.UUID
    email: str
    name: str
    role: RoleName
    is_active: bool
    created_at: datetime


class UserState(IntegrationEvent, frozen=True, kw_only=True):
    user_id: uuid.UUID
    role: RoleName
    is_active: bool
    created_at: datetime
    erased: bool = False


class UserRegistered(UserState, frozen=True, kw_only=True, tag="users.UserRegistered.v2"):
    pass


class UserProfileChanged(UserState, frozen=True, kw_only=True, tag="users.UserProfileChanged.v2"):
    pass


class UserRoleChanged(UserState, frozen=True, kw_only=True, tag="users.UserRoleChanged.v2"):
    pass


class UserDeactivated(UserState, frozen=True, kw_only=True, tag="users.UserDeactivated.v2"):
    pass


class UserReactivated(UserState, frozen=True, kw_only=True, tag="users.UserReactivated.v2"):
    pass


class UserErased(UserState, frozen=True, kw_only=True, tag="users.UserErased.v2"):
    pass


USER_EVENTS: tuple[type[UserState], ...] = (
    UserRegistered,
    UserProfileChanged,
    UserRoleChanged,
    UserDeactivated,
    UserReactivated,
    UserErased,
)


class PasswordResetRequested(
    IntegrationEvent, frozen=True, kw_only=True, tag="users.PasswordResetRequested.v1"
):
    """Someone asked for a reset link for an account that can sign in. The token is not in
    the event: the mail asks :class:`ResetTokens` for one when it is written."""

    user_id: uuid.UUID


# ---------------------------------------------------------------- read, no longer written


class _UserStateV1(LegacyEvent, frozen=True, kw_only=True):
    user_id: uuid.UUID
    role: RoleName
    is_active: bool
    created_at: datetime
    erased: bool = False
    email: str | None = None  # blanked in the outbox when the account is erased
    name: str | None = None


class UserRegisteredV1(_UserStateV1, frozen=True, kw_only=True, tag="users.UserRegistered.v1"):
    current: ClassVar[type[IntegrationEvent]] = UserRegistered


class UserProfileChangedV1(
    _UserStateV1, frozen=True, kw_only=True, tag="users.UserProfileChanged.v1"
):
    current: ClassVar[type[IntegrationEvent]] = UserProfileChanged


class UserRoleChangedV1(_UserStateV1, frozen=True, kw_only=True, tag="users.UserRoleChanged.v1"):
    current: ClassVar[type[IntegrationEvent]] = UserRoleChanged


class UserDeactivatedV1(_UserStateV1, frozen=True, kw_only=True, tag="users.UserDeactivated.v1"):
    current: ClassVar[type[IntegrationEvent]] = UserDeactivated


class UserReactivatedV1(_UserStateV1, frozen=True, kw_only=True, tag="users.UserReactivated.v1"):
    current: ClassVar[type[IntegrationEvent]] = UserReactivated


class UserErasedV1(_UserStateV1, frozen=True, kw_only=True, tag="users.UserErased.v1"):
    current: ClassVar[type[IntegrationEvent]] = UserErased


LEGACY_USER_EVENTS: tuple[type[LegacyEvent], ...] = (
    UserRegisteredV1,
    UserProfileChangedV1,
    UserRoleChangedV1,
    UserDeactivatedV1,
    UserReactivatedV1,
    UserErasedV1,
)


# ---------------------------------------------------------------- queries


class Contact(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how to write to a person, as the account says now."""

    email: str
    name: str


class ResetTokens(Protocol):
    async def issue(self, user_id: uuid.UUID) -> str | None:
        """A new password reset token for the account (voiding the one before), valid 30
        minutes; None if the account can no longer reset its password."""
        ...


class UserContacts(Protocol):
    async def contact(self, user_id: uuid.UUID) -> Contact | None:
        """The account's address and name; None for an erased or unknown account."""
        ...


class Admin(msgspec.Struct, frozen=True, kw_only=True):
    user_id: uuid.UUID
    email: str


class Administrators(Protocol):
    """For the composition root (the bootstrap admin at start-up, ``shop users create-admin``)."""

    async def ensure_admin(self, email: str, password: str) -> Admin:
        """The account of ``email`` exists, is active and is an admin (created with
        ``password`` if new). An existing account is promoted only if ``password`` is its
        password; else a ``Conflict`` (``admin-email-taken``) is raised."""
        ...
