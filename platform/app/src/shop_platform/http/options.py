"""``OPTIONS`` on any route: 204 with ``Allow`` naming every method of the path, for anyone.

Litestar 2 answers ``OPTIONS`` with a handler it adds to the first route registered for a path.
That handler lists only the methods of that first route in ``Allow`` (``OPTIONS /orders``
named POST but not GET; fixed in Litestar 3 only), and it belongs to that route's controller,
so it runs the controller's guards: the admin guard of ``/notifications`` then asked for a
user that the bearer middleware, which lets ``OPTIONS`` through without credentials, never
set, and answered 500. This middleware answers ``OPTIONS`` itself once the path is routed,
before any guard, from the app's complete route table.
"""

from __future__ import annotations

from typing import Any, cast

from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Receive, Scope, Send


def answer_options(app: ASGIApp) -> ASGIApp:
    """App middleware: ``OPTIONS`` gets 204 and ``Allow``; every other request goes on."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await app(scope, receive, send)
            return
        allowed = methods_of(cast("Litestar", scope["litestar_app"]), scope["path_template"])
        if not allowed:
            await app(scope, receive, send)
            return
        await send({
            "type": "http.response.start",
            "status": 204,
            "headers": [(b"allow", ", ".join(allowed).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": b""})

    return middleware


def methods_of(app: Litestar, path_template: str) -> list[str]:
    """Every method the routes of ``path_template`` (``/orders/{order_id}``) answer, sorted."""
    methods: set[str] = set()
    for route in cast("list[Any]", app.routes):
        if isinstance(route, HTTPRoute) and route.path_format == path_template:
            methods |= set(route.methods)
    return sorted(methods | {"OPTIONS"}) if methods else []
