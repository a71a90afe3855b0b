"""What the users' use cases need from the outside world, as Protocols the adapters fulfil."""

from __future__ import annotations

import uuid
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from shop_users.domain.model import EmailAddress, User


class UserRepository(Protocol):
    async def get(self, user_id: uuid.UUID) -> User | None: ...

    async def get_by_email(self, email: EmailAddress) -> User | None: ...

    async def add(self, user: User) -> None:
        """Store a new user; ``EmailAlreadyRegistered`` if the email is taken."""
        ...

    async def save(self, user: User) -> None:
        """Store changes of a loaded user; ``ConcurrentChange`` if someone else saved first."""
        ...


class ResetTokens(Protocol):
    """Password reset tokens, kept only as digests."""

    async def replace(self, user_id: uuid.UUID, digest: str, expires_at: datetime) -> None:
        """Keep ``digest`` as the account's one valid token (older ones are void)."""
        ...

    async def take(self, digest: str) -> uuid.UUID | None:
        """Use up the token: its account, if it exists and has not expired (then it is gone)."""
        ...

    async def valid(self, digest: str) -> bool:
        """Whether the token exists and has not expired (nothing is used up)."""
        ...


class UsersTransaction(Protocol):
    """One business transaction: the repositories inside it, and the decision to commit."""

    @property
    def users(self) -> UserRepository: ...

    @property
    def reset_tokens(self) -> ResetTokens: ...

    async def commit(self) -> None: ...


class UsersUnitOfWork(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[UsersTransaction]: ...


class PasswordHasher(Protocol):
    async def hash(self, password: str) -> str: ...

    async def verify(self, password_hash: str, password: str) -> bool: ...

    def needs_rehash(self, password_hash: str) -> bool: ...

    async def verify_dummy(self, password: str) -> None:
        """Spend what a verification costs, for an account that does not exist."""
        ...
