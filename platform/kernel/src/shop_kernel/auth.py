"""Who is calling, as every context's controllers see it: the principal and the guards.

Access tokens belong to the context that issues them (users): it says whom a token names
through :class:`Authenticator`, which the platform's bearer middleware asks on every request
that needs a token, putting the answer in ``request.user``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast
from uuid import UUID

from litestar.connection import ASGIConnection
from litestar.exceptions import PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

Role = Literal["customer", "admin"]


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, as ``request.user``."""

    user_id: UUID
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Authenticator(Protocol):
    """Provided by the context that issues access tokens (registered in the container)."""

    async def principal(self, token: str) -> Principal | None:
        """Whom the bearer ``token`` names now; None for a token that must be refused (not
        ours, expired, or of an account that can no longer use it)."""
        ...


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """Who is asking, on a route that anyone may read (None: nobody signed in)."""
    user: object = cast("dict[str, object]", connection.scope).get("user")
    return user if isinstance(user, Principal) else None


async def admin_only(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """Route guard: 403 unless the caller is an admin. Async, so Litestar runs it in place
    rather than in a worker thread."""
    user = connection.user
    if not (isinstance(user, Principal) and user.is_admin):
        raise PermissionDeniedException(detail="This needs the admin role")
