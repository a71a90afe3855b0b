"""The users' use cases: each one loads, lets the ``User`` decide, and saves in the unit of
work it is given. No transaction (nor a pooled connection) is held while a password hashes."""

from __future__ import annotations

import uuid
from typing import ClassVar

from shop_kernel.domain import ConcurrentChange, Conflict, NotAuthenticated
from shop_kernel.unit_of_work import UnitOfWork
from shop_users.application.ports import PasswordHasher, UserRepository
from shop_users.domain.model import (
    DisplayName,
    EmailAddress,
    EmailAlreadyRegistered,
    InvalidField,
    Role,
    User,
    UserNotFound,
    WrongPassword,
)
from shop_users.domain.passwords import PasswordPolicy


class InvalidCredentials(NotAuthenticated):
    """The same answer for an unknown email and a wrong password: nothing is given away."""

    code: ClassVar[str] = "invalid-credentials"

    def __init__(self) -> None:
        super().__init__("the email or the password is not correct")


class AccountDeactivated(NotAuthenticated):
    code: ClassVar[str] = "account-deactivated"

    def __init__(self) -> None:
        super().__init__("this account is deactivated")


class Accounts:
    def __init__(
        self, users: UserRepository, hasher: PasswordHasher, policy: PasswordPolicy
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._policy = policy

    async def register(
        self, uow: UnitOfWork, email: str, password: str, name: str, *, role: Role = Role.CUSTOMER
    ) -> User:
        address, display_name = EmailAddress.parse(email), DisplayName.parse(name)
        self._policy.check(password)
        password_hash = await self._hasher.hash(password)
        async with uow:
            if await self._users.get_by_email(uow, address) is not None:
                raise EmailAlreadyRegistered
            user = User.register(address, display_name, password_hash, role=role)
            await self._users.add(uow, user)
            await uow.commit()
        return user

    async def authenticate(self, uow: UnitOfWork, email: str, password: str) -> User:
        # Hashing takes tens of milliseconds (more when logins queue for the hashing cap), so
        # no transaction, and no pooled connection, is held while a password is verified.
        try:
            address: EmailAddress | None = EmailAddress.parse(email)
        except InvalidField:
            address = None
        user = None
        if address is not None:
            async with uow:
                user = await self._users.get_by_email(uow, address)
        if user is None or user.password_hash is None:
            await self._hasher.verify_dummy(password)
            raise InvalidCredentials
        if not await self._hasher.verify(user.password_hash, password):
            raise InvalidCredentials
        if not user.is_active:
            raise AccountDeactivated
        if self._hasher.needs_rehash(user.password_hash):
            await self._rehash(uow, user, password)
        return user

    async def _rehash(self, uow: UnitOfWork, verified: User, password: str) -> None:
        new_hash = await self._hasher.hash(password)
        async with uow:
            user = await self._users.get(uow, verified.id)
            if user is None or user.password_hash != verified.password_hash:
                return  # changed meanwhile: that change wins, the next sign-in rehashes
            user.rehash(new_hash)
            await self._users.save(uow, user)
            await uow.commit()

    async def profile(self, uow: UnitOfWork, user_id: uuid.UUID) -> User:
        async with uow:
            return await self._existing(uow, user_id)

    async def change_profile(
        self, uow: UnitOfWork, user_id: uuid.UUID, *, name: str | None, email: str | None
    ) -> User:
        new_name = DisplayName.parse(name) if name is not None else None
        new_email = EmailAddress.parse(email) if email is not None else None
        async with uow:
            user = await self._existing(uow, user_id)
            if (
                new_email is not None
                and new_email != user.email
                and await self._users.get_by_email(uow, new_email) is not None
            ):
                raise EmailAlreadyRegistered
            user.change_profile(name=new_name, email=new_email)
            await self._users.save(uow, user)
            await uow.commit()
        return user

    async def change_password(
        self, uow: UnitOfWork, user_id: uuid.UUID, current: str, new: str
    ) -> None:
        self._policy.check(new, "new_password")
        verified = await self.profile(uow, user_id)
        if verified.password_hash is None or not await self._hasher.verify(
            verified.password_hash, current
        ):
            raise WrongPassword
        new_hash = await self._hasher.hash(new)
        async with uow:
            user = await self._existing(uow, user_id)
            if user.version != verified.version:
                raise ConcurrentChange  # e.g. another password change in between
            user.change_password(new_hash)
            await self._users.save(uow, user)
            await uow.commit()

    async def administer(
        self, uow: UnitOfWork, user_id: uuid.UUID, *, role: Role | None, is_active: bool | None
    ) -> User:
        async with uow:
            user = await self._existing(uow, user_id)
            if role is not None:
                user.change_role(role)
            if is_active is True:
                user.reactivate()
            elif is_active is False:
                user.deactivate()
            if not user.pending_events:
                return user  # nothing changed: no new version, nothing to race over
            await self._users.save(uow, user)
            await uow.commit()
        return user

    async def erase(self, uow: UnitOfWork, user_id: uuid.UUID) -> None:
        async with uow:
            user = await self._existing(uow, user_id)
            user.erase()
            await self._users.save(uow, user)
            await uow.commit()

    async def ensure_admin(self, uow: UnitOfWork, email: str, password: str) -> User:
        """The bootstrap admin exists, is active and is an admin.

        An existing account is promoted only if ``password`` is its password: whoever
        registered the address first must not become an admin by a restart.
        """
        address = EmailAddress.parse(email)
        for _attempt in range(3):  # replicas starting together may race each other
            async with uow:
                existing = await self._users.get_by_email(uow, address)
            if existing is None:
                try:
                    return await self.register(
                        uow, email, password, "Administrator", role=Role.ADMIN
                    )
                except EmailAlreadyRegistered:
                    continue  # another process made it meanwhile
            if existing.role is Role.ADMIN and existing.is_active:
                return existing
            if existing.password_hash is None or not await self._hasher.verify(
                existing.password_hash, password
            ):
                raise AdminEmailTaken
            try:
                return await self.administer(uow, existing.id, role=Role.ADMIN, is_active=True)
            except ConcurrentChange:
                continue
        raise ConcurrentChange

    async def _existing(self, uow: UnitOfWork, user_id: uuid.UUID) -> User:
        user = await self._users.get(uow, user_id)
        if user is None or user.is_erased:
            raise UserNotFound(user_id)
        return user


class AdminEmailTaken(Conflict):
    code: ClassVar[str] = "admin-email-taken"

    def __init__(self) -> None:
        super().__init__(
            "an account with this email exists and the given password is not its password"
        )
