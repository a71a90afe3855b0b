"""Per-address limits in front of single routes (``POST /auth/token``, ``POST /users``): the
routes each context declares limited, with the kernel's shared ``RateLimiter``. Answers carry
the ``RateLimit-*`` headers of the IETF draft, and a refusal ``Retry-After`` as well."""

from __future__ import annotations

from collections.abc import Mapping

from litestar.datastructures import MutableScopeHeaders
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from shop_kernel.rate_limits import RateLimiter, RedisSource, too_many_requests


class RouteRateLimitMiddleware:
    """A limiter per client address (``scope["client"]``: the socket's peer, or what
    uvicorn took from the forwarding headers of a trusted proxy) for one ``(method, path)``;
    every other request passes untouched."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, route: tuple[str, str]) -> None:
        self.app = app
        self.limiter = limiter
        self.route = (route[0].upper(), _normal_path(route[1]))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], _normal_path(scope["path"])) != self.route:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        decision = await self.limiter.hit(client[0] if client else "unknown")
        if not decision.allowed:
            raise too_many_requests(decision)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableScopeHeaders.from_message(message)
                for name, value in decision.headers().items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def rate_limit_middleware(
    limits: Mapping[tuple[str, str], int], *, redis: RedisSource
) -> list[DefineMiddleware]:
    """One middleware per ``(method, path)``: at most ``n`` requests a minute per address."""
    middleware: list[DefineMiddleware] = []
    for (method, path), per_minute in limits.items():
        route = (method.upper(), _normal_path(path))
        limiter = RateLimiter(redis, (per_minute, 60), name=f"route:{route[0]}:{route[1]}")
        middleware.append(DefineMiddleware(RouteRateLimitMiddleware, limiter=limiter, route=route))
    return middleware


def _normal_path(path: str) -> str:
    return path.rstrip("/") or "/"
