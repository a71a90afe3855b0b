"""Account recovery: a reset link by email, and a new password for whoever holds it.

A request says nothing about whether the account exists (the caller is answered before the
account is even looked up). For an account that can sign in it publishes
``PasswordResetRequested``; the mail that event calls for asks :meth:`issue` for the token
the moment it is written, so the token exists only in that mail and as a digest here. Each
issue voids the account's earlier token, a token is used up by its reset, and it expires
after 30 minutes. Erasure and deactivation void it too (the repositories do).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from shop_kernel.domain import RequestRefused
from shop_kernel.unit_of_work import UnitOfWork
from shop_users.application.ports import PasswordHasher, ResetTokens, UserRepository
from shop_users.domain.model import EmailAddress, InvalidField
from shop_users.domain.passwords import PasswordPolicy

TOKEN_BYTES = 32  # 256 bits
TOKEN_TTL = timedelta(minutes=30)


class InvalidResetToken(RequestRefused):
    """One answer for a token that is unknown, used or expired: nothing is given away."""

    code: ClassVar[str] = "invalid-reset-token"

    def __init__(self) -> None:
        super().__init__("this reset link is not valid (unknown, used or expired); ask again")


def token_digest(token: str) -> str:
    """What is kept of a token: its SHA-256 (a 256-bit random token needs no slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


class PasswordResets:
    def __init__(
        self,
        users: UserRepository,
        tokens: ResetTokens,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
    ) -> None:
        self._users = users
        self._tokens = tokens
        self._hasher = hasher
        self._policy = policy

    async def request(self, uow: UnitOfWork, email: str) -> None:
        """Publish the request for an account that can sign in; do nothing for any other."""
        try:
            address = EmailAddress.parse(email)
        except InvalidField:
            return
        async with uow:
            user = await self._users.get_by_email(uow, address)
            if user is not None and user.request_password_reset():
                await uow.commit()  # the event, through the outbox; the account is unchanged

    async def issue(self, uow: UnitOfWork, user_id: uuid.UUID) -> str | None:
        """A new token for the account (voiding the one before), or None if it can no longer
        reset its password (erased or deactivated meanwhile)."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        async with uow:
            user = await self._users.get(uow, user_id)
            if user is None or not user.can_sign_in:
                return None
            expires_at = datetime.now(UTC) + TOKEN_TTL
            await self._tokens.replace(uow, user_id, token_digest(token), expires_at)
            await uow.commit()
        return token

    async def reset(self, uow: UnitOfWork, token: str, new_password: str) -> None:
        """Set the password of the token's account and use the token up; every earlier access
        token of the account stops working, as after a password change."""
        self._policy.check(new_password, "new_password")
        digest = token_digest(token)
        async with uow:  # a short look first: no hashing for nonsense
            if not await self._tokens.valid(uow, digest):
                raise InvalidResetToken
        new_hash = await self._hasher.hash(new_password)  # no connection held meanwhile
        async with uow:
            user_id = await self._tokens.take(uow, digest)
            user = await self._users.get(uow, user_id) if user_id is not None else None
            if user is None or not user.can_sign_in:
                raise InvalidResetToken
            user.change_password(new_hash)
            await self._users.save(uow, user)
            await uow.commit()
