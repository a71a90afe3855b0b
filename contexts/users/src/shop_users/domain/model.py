"""The user account: who someone is to the shop, what they may do, and what happened to them."""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import ClassVar

from email_validator import EmailNotValidError, validate_email

from shop_kernel.domain import (
    AggregateRoot,
    BusinessRuleViolated,
    Conflict,
    DomainEvent,
    InvalidField,
    NotFound,
)

NAME_MAX = 100
EMAIL_MAX = 254


class EmailAlreadyRegistered(Conflict):
    code: ClassVar[str] = "email-already-registered"

    def __init__(self) -> None:
        super().__init__("an account with this email already exists")


class UserNotFound(NotFound):
    code: ClassVar[str] = "user-not-found"

    def __init__(self, user_id: uuid.UUID) -> None:
        super().__init__("no such user", user_id=str(user_id))


class WrongPassword(BusinessRuleViolated):
    code: ClassVar[str] = "wrong-password"

    def __init__(self) -> None:
        super().__init__("the current password is not correct")


class AccountErased(Conflict):
    code: ClassVar[str] = "account-erased"

    def __init__(self) -> None:
        super().__init__("this account has been erased")


class Role(StrEnum):
    CUSTOMER = "customer"
    ADMIN = "admin"


@dataclass(frozen=True)
class EmailAddress:
    """A syntactically valid address, stored lower-cased: two spellings are one account."""

    value: str

    @classmethod
    def parse(cls, raw: str, field_name: str = "email") -> EmailAddress:
        text = raw.strip()
        if not text or len(text) > EMAIL_MAX:
            raise InvalidField(field_name, f"an email address is 1..{EMAIL_MAX} characters")
        try:
            checked = validate_email(text, check_deliverability=False)
        except EmailNotValidError as exc:
            raise InvalidField(field_name, f"not a valid email address: {exc}") from None
        return cls(checked.normalized.lower())

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class DisplayName:
    value: str

    @classmethod
    def parse(cls, raw: str, field_name: str = "name") -> DisplayName:
        text = unicodedata.normalize("NFC", raw).strip()
        if not 1 <= len(text) <= NAME_MAX:
            raise InvalidField(field_name, f"a name is 1..{NAME_MAX} characters after trimming")
        if any(unicodedata.category(char) == "Cc" for char in text):
            raise InvalidField(field_name, "a name cannot contain control characters")
        return cls(text)

    def __str__(self) -> str:
        return self.value


# --- what happens to a user ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Registered(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class ProfileChanged(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class PasswordChanged(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class RoleChanged(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class Deactivated(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class Reactivated(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class Erased(DomainEvent):
    pass


class PasswordResetRequested(DomainEvent):
    """Someone asked for a reset link for this account (nothing about it changes)."""


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(kw_only=True, eq=False)
class User(AggregateRoot):
    """An account. ``token_generation`` grows whenever issued tokens must stop working.

    Erasure keeps the id (orders refer to it) and drops everything personal: the email, the
    name and the password hash; an erased account can never sign in or change again.
    """

    id: uuid.UUID
    email: EmailAddress | None
    name: DisplayName | None
    password_hash: str | None
    role: Role = Role.CUSTOMER
    is_active: bool = True
    token_generation: int = 1
    created_at: datetime = field(default_factory=_now)
    erased_at: datetime | None = None

    @classmethod
    def register(
        cls,
        email: EmailAddress,
        name: DisplayName,
        password_hash: str,
        *,
        role: Role = Role.CUSTOMER,
        user_id: uuid.UUID | None = None,
    ) -> User:
        user = cls(
            id=user_id or uuid.uuid4(),
            email=email,
            name=name,
            password_hash=password_hash,
            role=role,
        )
        user.record(Registered())
        return user

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None

    @property
    def can_sign_in(self) -> bool:
        return self.is_active and not self.is_erased

    def change_profile(self, *, name: DisplayName | None, email: EmailAddress | None) -> None:
        self._refuse_if_erased()
        changed = False
        if name is not None and name != self.name:
            self.name, changed = name, True
        if email is not None and email != self.email:
            self.email, changed = email, True
        if changed:
            self.record(ProfileChanged())

    def change_password(self, password_hash: str) -> None:
        """Set a new hash; every token issued before stops working."""
        self._refuse_if_erased()
        self.password_hash = password_hash
        self.token_generation += 1
        self.record(PasswordChanged())

    def rehash(self, password_hash: str) -> None:
        """The same password under current hashing parameters: tokens stay valid."""
        self._refuse_if_erased()
        self.password_hash = password_hash

    def change_role(self, role: Role) -> None:
        self._refuse_if_erased()
        if role != self.role:
            self.role = role
            self.token_generation += 1
            self.record(RoleChanged())

    def deactivate(self) -> None:
        self._refuse_if_erased()
        if self.is_active:
            self.is_active = False
            self.token_generation += 1
            self.record(Deactivated())

    def reactivate(self) -> None:
        self._refuse_if_erased()
        if not self.is_active:
            self.is_active = True
            self.record(Reactivated())

    def erase(self, at: datetime | None = None) -> None:
        if self.is_erased:
            return
        self.email = None
        self.name = None
        self.password_hash = None
        self.is_active = False
        self.token_generation += 1
        self.erased_at = at or _now()
        self.record(Erased())

    def request_password_reset(self) -> bool:
        """Record the request if the account may reset its password (it can sign in)."""
        if not self.can_sign_in:
            return False
        self.record(PasswordResetRequested())
        return True

    def _refuse_if_erased(self) -> None:
        if self.is_erased:
            raise AccountErased
