"""What the users' use cases need from the outside world, as Protocols the adapters fulfil."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from shop_kernel.unit_of_work import UnitOfWork
from shop_users.domain.model import EmailAddress, User


class UserRepository(Protocol):
    """The accounts, in the transaction of the unit of work each call is given."""

    async def get(self, uow: UnitOfWork, user_id: uuid.UUID) -> User | None: ...

    async def get_by_email(self, uow: UnitOfWork, email: EmailAddress) -> User | None: ...

    async def add(self, uow: UnitOfWork, user: User) -> None:
        """Store a new user; ``EmailAlreadyRegistered`` if the email is taken."""
        ...

    async def save(self, uow: UnitOfWork, user: User) -> None:
        """Store changes of a loaded user; ``ConcurrentChange`` if someone else saved first."""
        ...


class ResetTokens(Protocol):
    """Password reset tokens, kept only as digests."""

    async def replace(
        self, uow: UnitOfWork, user_id: uuid.UUID, digest: str, expires_at: datetime
    ) -> None:
        """Keep ``digest`` as the account's one valid token (older ones are void)."""
        ...

    async def take(self, uow: UnitOfWork, digest: str) -> uuid.UUID | None:
        """Use up the token: its account, if it exists and has not expired (then it is gone)."""
        ...

    async def valid(self, uow: UnitOfWork, digest: str) -> bool:
        """Whether the token exists and has not expired (nothing is used up)."""
        ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool: ...

    async def verify_dummy(self, password: str) -> None:
        """Spend what a verification costs, for an account that does not exist."""
        ...
