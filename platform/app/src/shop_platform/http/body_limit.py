"""The body limit, before any work: no route reads, holds or acts on more than the limit.

Outside the application (only the request id wraps it): a request that declares a longer
``Content-Length`` is refused before one byte is read, and a chunked one is read up to the
limit and refused the moment it passes it. Either way the answer is 413 problem+json and no
store has been touched: neither the token check, nor an ``Idempotency-Key``, nor a handler
has run. A body within the limit is handed on whole, so nothing behind this reads a stream.

The connection is not closed on the client's face: the server drops what else arrives of
that body (storing none of it) until its keep-alive timeout, so that the client can read the
413 instead of a connection reset.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, cast

import msgspec
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send

from shop_kernel.log import current_request_id, get_logger

log = get_logger(__name__)

_PROBLEM = b"application/problem+json"


class _TooLarge(Exception):
    pass


def body_limit_middleware(app: ASGIApp, max_bytes: int) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        request = cast("HTTPScope", scope)
        declared = _content_length(request)
        if declared is not None and declared > max_bytes:
            await _refuse(request, send, max_bytes)
            return
        try:
            body = await _read_at_most(receive, max_bytes)
        except _TooLarge:
            await _refuse(request, send, max_bytes)
            return
        await app(scope, _replayed(body, receive), send)

    return middleware


def _content_length(request: HTTPScope) -> int | None:
    for name, value in request["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app sees it
    return None


async def _read_at_most(receive: Receive, max_bytes: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client left: the app sees an empty body and its own disconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge
        parts.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replayed(body: bytes, receive: Receive) -> Receive:
    """The body as one message, then the client's own messages (its disconnect)."""
    handed = False

    async def replay() -> Any:
        nonlocal handed
        if handed:
            return await receive()
        handed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return cast("Receive", replay)


async def _refuse(request: HTTPScope, send: Send, max_bytes: int) -> None:
    log.info("body over the limit refused", path=request["path"], limit=max_bytes)
    body = msgspec.json.encode({
        "type": "about:blank",
        "title": HTTPStatus(413).phrase,
        "status": 413,
        "detail": f"The body is over the limit of {max_bytes} bytes",
        "instance": request["path"],
        "request_id": current_request_id(),
    })  # fmt: skip
    start: Message = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", _PROBLEM),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    await send(start)
    end: Message = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)
