"""Gives every request an id (taken from ``X-Request-ID`` when sane) and logs one access line."""

from __future__ import annotations

import logging
import re
import time
import uuid

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from shop_kernel.log import bind_request_id, clear_request_context, get_logger

log = get_logger("shop.access")
_access = logging.getLogger("shop.access")

_HEADER = b"x-request-id"
_SANE_ID = re.compile(rb"\A[A-Za-z0-9._:-]{1,128}\Z")
_QUIET_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})


def request_context_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == _HEADER), b"")
        request_id = given.decode() if _SANE_ID.match(given) else uuid.uuid4().hex
        clear_request_context()
        bind_request_id(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((_HEADER, request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            path = scope["path"]
            level = logging.DEBUG if path in _QUIET_PATHS and status < 500 else logging.INFO
            if _access.isEnabledFor(level):  # a line below the level costs nothing more
                log.log(
                    level,
                    "request",
                    method=scope["method"],
                    path=path,
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                )
            clear_request_context()

    return middleware
