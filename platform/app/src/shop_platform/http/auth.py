"""The bearer check in front of every route that needs a token.

Which routes are public (the ops paths, and the routes each context declares public, such as
signing in) and which are open reads (``GET /products``: a token, when sent, still counts)
the app says; whom a token names, the context that issues tokens says, through the kernel's
``Authenticator`` in the container. A handler may also opt out itself, as Litestar's own
auth middleware lets it (``exclude_from_auth=True``). Every refusal is one answer (401 with
``WWW-Authenticate: Bearer``), so that a client learns nothing about why.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from litestar.exceptions import NotAuthorizedException
from litestar.middleware import DefineMiddleware
from litestar.openapi.spec import Components, SecurityRequirement, SecurityScheme
from litestar.types import ASGIApp, HTTPScope, Receive, Scope, Send

from shop_kernel.auth import Authenticator

SCHEME = "BearerToken"
COMPONENTS = Components(
    security_schemes={
        SCHEME: SecurityScheme(
            # An OpenAPI 3.1 http scheme names no header: bearer implies Authorization.
            type="http",
            scheme="Bearer",
            bearer_format="JWT",
            description="An access token from POST /auth/token.",
        )
    }
)
SECURITY: list[SecurityRequirement] = [{SCHEME: []}]


class BearerAuthMiddleware:
    """Puts the caller's ``Principal`` in ``scope["user"]``, or answers 401."""

    def __init__(
        self,
        app: ASGIApp,
        authenticator: Callable[[], Authenticator | None],
        public_prefixes: Sequence[str],
        public_routes: frozenset[tuple[str, str]],
        open_reads: Sequence[str],
    ) -> None:
        self.app = app
        self._authenticator = authenticator
        self._public_prefixes = [
            re.compile(rf"^{re.escape(prefix.rstrip('/'))}(?:/|$)") for prefix in public_prefixes
        ]
        self._public_routes = public_routes
        self._open_reads = open_reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = cast("HTTPScope", scope)
        if request["method"] == "OPTIONS" or self._public(request):
            await self.app(scope, receive, send)
            return
        header = dict(request["headers"]).get(b"authorization")
        if header is None and self._open_read(request):
            await self.app(scope, receive, send)
            return
        scheme, _, token = (header or b"").decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _unauthorized("A bearer token is required")
        authenticator = self._authenticator()
        if authenticator is None:  # no context issues tokens: none can be good
            raise _unauthorized("The token is not valid")
        principal = await authenticator.principal(token.strip())
        if principal is None:
            raise _unauthorized("The token is not valid")
        cast("dict[str, Any]", scope)["user"] = principal
        await self.app(scope, receive, send)

    def _public(self, request: HTTPScope) -> bool:
        handler: Any = cast("dict[str, Any]", request).get("route_handler")
        if handler is not None and handler.opt.get("exclude_from_auth"):
            return True
        path = _normal_path(request["path"])
        return (request["method"], path) in self._public_routes or any(
            prefix.match(path) for prefix in self._public_prefixes
        )

    def _open_read(self, request: HTTPScope) -> bool:
        if request["method"] not in ("GET", "HEAD"):
            return False
        path = _normal_path(request["path"])
        return any(path == p or path.startswith(p + "/") for p in self._open_reads)


def bearer_auth(
    authenticator: Callable[[], Authenticator | None],
    *,
    public_prefixes: Sequence[str] = (),
    public_routes: Iterable[tuple[str, str]] = (),
    open_reads: Sequence[str] = (),
) -> DefineMiddleware:
    """The middleware for every route but ``public_prefixes`` (a path and all below it) and
    ``public_routes`` (exact ``(method, path)`` pairs); under ``open_reads`` (path prefixes)
    GET and HEAD need no token, but one that is sent is checked."""
    return DefineMiddleware(
        BearerAuthMiddleware,
        authenticator=authenticator,
        public_prefixes=public_prefixes,
        public_routes=frozenset((m.upper(), _normal_path(p)) for m, p in public_routes),
        open_reads=[prefix.rstrip("/") for prefix in open_reads],
    )


def _unauthorized(detail: str) -> NotAuthorizedException:
    return NotAuthorizedException(detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _normal_path(path: str) -> str:
    return path.rstrip("/") or "/"
