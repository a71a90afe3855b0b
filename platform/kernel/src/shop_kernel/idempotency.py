"""``Idempotency-Key`` on creating POSTs (API.md): a retry gets the first answer, not a twin.

The first request with a key runs and its response (status, body, a few headers) is kept in
Redis for 24 h under the caller, the path and the key. A repeat with the same body gets that
response again with ``Idempotent-Replayed: true``; with another body, 422; while the first
is still running, 409. A first request that fails with a 5xx keeps nothing, so it can be
retried. (If the process dies between its commit and keeping the response, a retry after
the in-flight marker expires runs again: the window is that one request's duration.)
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, cast

import msgspec
import punq
from litestar.exceptions import ClientException, HTTPException
from litestar.params import HeaderParameter
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from redis.asyncio import Redis

from shop_kernel.auth import Principal

HEADER = b"idempotency-key"
KEY_MAX = 255
KEEP_S = 24 * 3600
RUNNING_S = 60  # longer than any request may take: then a crashed first attempt may rerun
_REPLAYED_HEADERS = (b"content-type", b"etag", b"location")

# Declared on each idempotent handler too, so that the OpenAPI document shows it.
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        min_length=1,
        max_length=KEY_MAX,
        description="Repeat a creating request safely: the first answer is replayed (24 h).",
    ),
]


class _Kept(msgspec.Struct):
    fingerprint: str
    status: int = 0
    headers: list[tuple[str, str]] = msgspec.field(default_factory=list[tuple[str, str]])
    body: bytes = b""

    @property
    def finished(self) -> bool:
        return self.status != 0


def idempotent(app: ASGIApp) -> ASGIApp:
    """Route middleware for a POST that creates something."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        request = cast("HTTPScope", scope)
        key = dict(request["headers"]).get(HEADER)
        if scope["type"] != "http" or key is None:
            await app(scope, receive, send)
            return
        text = key.decode("latin-1")
        if not 1 <= len(text) <= KEY_MAX:
            raise ClientException(f"Idempotency-Key must be 1..{KEY_MAX} characters")
        body = await _read_body(receive)
        redis = _redis(scope)
        slot = slot_key(_caller(scope), request["path"], text)
        fingerprint = hashlib.sha256(body).hexdigest()
        claimed = await redis.set(
            slot, msgspec.msgpack.encode(_Kept(fingerprint)), nx=True, ex=RUNNING_S
        )
        if not claimed:
            raw = await redis.get(slot)
            if raw is None:  # expired between the two calls: treat as a fresh attempt
                raise HTTPException(status_code=409, detail="Try the request again")
            await _answer_from(msgspec.msgpack.decode(raw, type=_Kept), fingerprint, send)
            return
        await _run_and_keep(
            app, scope, _replay(body), send, redis=redis, slot=slot, fingerprint=fingerprint
        )

    return middleware


async def _answer_from(kept: _Kept, fingerprint: str, send: Send) -> None:
    if kept.fingerprint != fingerprint:
        raise HTTPException(
            status_code=422, detail="This Idempotency-Key was used with a different body"
        )
    if not kept.finished:
        raise HTTPException(
            status_code=409, detail="A request with this Idempotency-Key is still running"
        )
    headers = [(name.encode(), value.encode()) for name, value in kept.headers]
    headers.append((b"idempotent-replayed", b"true"))
    start: Any = {"type": "http.response.start", "status": kept.status, "headers": headers}
    await send(start)
    end: Any = {"type": "http.response.body", "body": kept.body, "more_body": False}
    await send(end)


async def _run_and_keep(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    redis: Redis,
    slot: str,
    fingerprint: str,
) -> None:
    kept = _Kept(fingerprint)
    chunks: list[bytes] = []

    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            kept.status = int(message["status"])
            kept.headers = [
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in message.get("headers", [])
                if name.lower() in _REPLAYED_HEADERS
            ]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
        await send(message)

    try:
        await app(scope, receive, capture)
    except BaseException:
        await redis.delete(slot)
        raise
    if kept.status >= 500 or kept.status == 0:
        await redis.delete(slot)
        return
    kept.body = b"".join(chunks)
    await redis.set(slot, msgspec.msgpack.encode(kept), ex=KEEP_S)


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Any:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return cast("Receive", receive)


def _caller(scope: Scope) -> str:
    user: Any = cast("dict[str, Any]", scope).get("user")
    if isinstance(user, Principal):
        return f"user-{user.user_id}"
    client = cast("HTTPScope", scope)["client"]
    return f"address-{client[0] if client else 'unknown'}"


def slot_key(caller: str, path: str, key: str) -> str:
    """Where a request's answer is kept: per caller (``user-<id>`` or ``address-<ip>``)."""
    digest = hashlib.sha256(f"{path}\n{key}".encode()).hexdigest()
    return f"shop:idempotency:{caller}:{digest}"


def _redis(scope: Scope) -> Redis:
    container = cast("punq.Container", cast("Any", scope["app"]).state.container)
    redis: Redis = container.resolve(Redis)  # pyright: ignore[reportUnknownMemberType]
    return redis
