"""``Idempotency-Key`` on creating POSTs (API.md): a retry gets the first answer, not a twin.

The answer to a request with a key (status, body, a few headers) is kept in PostgreSQL for
24 h under the caller, the path and the key, and it is written in the same transaction as
the request's effect: the request's unit of work (``shop_kernel.di``) is made within the
key's transaction (:func:`keyed_transaction`), so its change commits only when the answer is
stored with it, and the answer leaves the server only after that commit. There is no moment
at which the effect exists without its answer, or the other way round: a crash anywhere
leaves both or neither.

A repeat with the same body gets the kept answer with ``Idempotent-Replayed: true``; with
another body, 422; while the first still runs (it holds a transaction-scoped advisory lock
on the key), 409. A 5xx answer is not kept and its effect is rolled back, so it can be
retried. A request with a key checks out its connection only when its first unit of work
begins (or to keep a 4xx answer of a request that needed none), and holds it to the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from datetime import timedelta
from typing import Annotated, Any, cast

import msgspec
import punq
from litestar import Request
from litestar.di import Provide
from litestar.exceptions import ClientException, HTTPException
from litestar.params import HeaderParameter
from litestar.types import ASGIApp, HTTPScope, Message, Receive, Scope, Send
from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shop_kernel.auth import Principal
from shop_kernel.di import resolved
from shop_kernel.driver import Compiled, driver_of
from shop_kernel.messaging.tables import idempotency_keys
from shop_kernel.unit_of_work import Transactions, UnitOfWork

HEADER = b"idempotency-key"
KEY_MAX = 255
KEEP = timedelta(hours=24)
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

_TRY_LOCK = Compiled(select(func.pg_try_advisory_xact_lock(bindparam("lock")).label("locked")))
_KEPT = Compiled(
    select(idempotency_keys).where(
        idempotency_keys.c.caller == bindparam("caller"),
        idempotency_keys.c.key_digest == bindparam("key_digest"),
        idempotency_keys.c.expires_at > func.now(),
    )
)
_NEW_ANSWER = insert(idempotency_keys).values(
    caller=bindparam("caller"),
    key_digest=bindparam("key_digest"),
    fingerprint=bindparam("fingerprint"),
    status=bindparam("status"),
    headers=bindparam("headers"),
    body=bindparam("body"),
    subject=bindparam("subject"),
    expires_at=func.now() + KEEP,
)
_KEEP = Compiled(
    _NEW_ANSWER.on_conflict_do_update(  # only an expired answer can be there: it is replaced
        constraint="idempotency_keys_pkey",
        set_={
            column: _NEW_ANSWER.excluded[column]
            for column in (
                "fingerprint",
                "status",
                "headers",
                "body",
                "subject",
                "created_at",
                "expires_at",
            )
        },
    )
)


class _Answer:
    """The response as the handler produced it, held back until its transaction commits."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.status = 0

    async def capture(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        self.messages.append(message)

    @property
    def complete(self) -> bool:
        return self.status != 0 and any(
            m["type"] == "http.response.body" and not m.get("more_body", False)
            for m in self.messages
        )

    def kept(self) -> dict[str, Any]:
        start = self.messages[0]
        headers = [
            [name.decode("latin-1"), value.decode("latin-1")]
            for name, value in start.get("headers", [])
            if name.lower() in _REPLAYED_HEADERS
        ]
        body = b"".join(m.get("body", b"") for m in self.messages[1:])
        return {"status": self.status, "headers": headers, "body": body}

    async def send(self, send: Send) -> None:
        for message in self.messages:
            await send(message)


class KeyedTransaction:
    """The transaction of a keyed request, begun when its first unit of work needs it.

    A request checks out no pooled connection while it does what needs none: reading and
    checking its body, hashing a password (which may wait for one of the hasher's slots).
    Beginning takes the key's lock and looks for an answer kept meanwhile; either one
    refuses the request (409, ``KeyInUse``), and the middleware answers for it.
    """

    def __init__(self, engine: AsyncEngine, slot: dict[str, str]) -> None:
        self._engine = engine
        self._slot = slot
        self._begun: AsyncConnection | None = None
        self._beginning = asyncio.Lock()
        self.kept: dict[str, Any] | None = None  # an answer that appeared meanwhile
        self.refused = False

    async def connection(self) -> AsyncConnection:
        async with self._beginning:
            if self._begun is None:
                if self.refused:
                    raise KeyInUse
                self._begun = await self._begin()
            return self._begun

    async def _begin(self) -> AsyncConnection:
        connection = await self._engine.connect()
        try:
            driver = driver_of(connection)
            lock = lock_id(self._slot["caller"], self._slot["key_digest"])
            locked = await _TRY_LOCK.first(driver, lock=lock)
            if locked is None or not locked["locked"]:
                self.refused = True
            else:
                # A statement of its own, begun after the lock is held: it sees an answer
                # its holder committed just before letting go.
                self.kept = await _KEPT.first(driver, **self._slot)
                self.refused = self.kept is not None
            if self.refused:
                raise KeyInUse
        except BaseException:
            await connection.close()
            raise
        return connection

    async def keep(self, answer: dict[str, Any]) -> None:
        connection = await self.connection()
        driver = driver_of(connection)
        headers = msgspec.json.encode(answer["headers"]).decode()  # the statement casts it
        await _KEEP.run(driver, **self._slot, **{**answer, "headers": headers})
        if connection.in_transaction():  # a statement went through SQLAlchemy
            await connection.commit()
        else:
            await driver.commit()

    async def close(self) -> None:
        if self._begun is not None:
            await self._begun.close()  # rolls back what was not committed
            self._begun = None


class KeyInUse(HTTPException):
    """Another request with this key runs (or has just answered)."""

    status_code = 409
    detail = "A request with this Idempotency-Key is still running"


def idempotent(app: ASGIApp) -> ASGIApp:
    """Route middleware for a POST that creates something."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        request = cast("HTTPScope", scope)
        key = dict(request["headers"]).get(HEADER)
        if scope["type"] != "http" or key is None:
            await app(scope, receive, send)
            return
        text_key = key.decode("latin-1")
        if not 1 <= len(text_key) <= KEY_MAX:
            raise ClientException(f"Idempotency-Key must be 1..{KEY_MAX} characters")
        body = await _read_body(receive)  # within the body limit, which comes first
        slot = {
            "caller": caller_of(scope),
            "key_digest": key_digest(request["path"], text_key),
        }
        fingerprint = hashlib.sha256(body).hexdigest()
        engine = _transactions(scope).engine
        # A repeat finds the first answer when its transaction begins, under the key's lock,
        # and is answered from it: its handler's change is never committed.
        transaction = KeyedTransaction(engine, slot)
        answer = _Answer()
        cast("dict[str, Any]", scope)[_KEYED] = transaction
        try:
            await app(scope, _replay(body), answer.capture)
            if not transaction.refused and answer.complete and answer.status < 500:
                subject = cast("dict[str, Any]", scope).get(_SUBJECT)
                kept_answer = {"fingerprint": fingerprint, "subject": subject, **answer.kept()}
                with contextlib.suppress(KeyInUse):  # refused: answered below
                    await transaction.keep(kept_answer)
        finally:
            await transaction.close()
        if transaction.kept is not None:
            await _answer_from(transaction.kept, fingerprint, send)
        elif transaction.refused:
            raise KeyInUse
        else:
            await answer.send(send)

    return middleware


async def _answer_from(kept: dict[str, Any], fingerprint: str, send: Send) -> None:
    if kept["fingerprint"] != fingerprint:
        raise HTTPException(
            status_code=422, detail="This Idempotency-Key was used with a different body"
        )
    headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in kept["headers"]]
    headers.append((b"idempotent-replayed", b"true"))
    start: Any = {"type": "http.response.start", "status": kept["status"], "headers": headers}
    await send(start)
    end: Any = {"type": "http.response.body", "body": bytes(kept["body"]), "more_body": False}
    await send(end)


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


_SUBJECT = "shop.idempotency_subject"
_KEYED = "shop.keyed_transaction"


def keyed_transaction(scope: Scope) -> KeyedTransaction | None:
    """The transaction of this request's ``Idempotency-Key``, if it has one: the request's
    unit of work works inside it."""
    found: object = cast("dict[str, Any]", scope).get(_KEYED)
    return found if isinstance(found, KeyedTransaction) else None


def concerning(scope: Scope, subject: uuid.UUID) -> None:
    """Say whom the answer to this request is about (it names a person): erasing that
    person's data removes the kept answer too (:func:`forget_answers_about`)."""
    cast("dict[str, Any]", scope)[_SUBJECT] = str(subject)


async def forget_answers_about(connection: AsyncConnection, subject: uuid.UUID) -> None:
    """Remove every kept answer about ``subject`` or to requests ``subject`` made, in the
    caller's transaction (an erasure): a retry with the same key then runs anew."""
    await connection.execute(
        delete(idempotency_keys).where(
            (idempotency_keys.c.subject == str(subject))
            | (idempotency_keys.c.caller == f"user-{subject}")
        )
    )


def caller_of(scope: Scope) -> str:
    """Whose keys these are: ``user-<id>``, or ``address-<ip>`` for an anonymous caller."""
    user: Any = cast("dict[str, Any]", scope).get("user")
    if isinstance(user, Principal):
        return f"user-{user.user_id}"
    client = cast("HTTPScope", scope)["client"]
    return f"address-{client[0] if client else 'unknown'}"


def key_digest(path: str, key: str) -> str:
    return hashlib.sha256(f"{path}\n{key}".encode()).hexdigest()


def lock_id(caller: str, digest: str) -> int:
    """The advisory lock a running request holds on its key (a signed 64-bit number)."""
    raw = hashlib.sha256(f"idempotency\n{caller}\n{digest}".encode()).digest()
    return int.from_bytes(raw[:8], "big", signed=True)


def _transactions(scope: Scope) -> Transactions:
    return resolved(cast("punq.Container", cast("Any", scope["app"]).state.container), Transactions)


def request_unit_of_work(request: Request[Any, Any, Any]) -> UnitOfWork:
    """The ``uow`` dependency of every route: a unit of work for the request's use case,
    inside the key's transaction when the request has an ``Idempotency-Key`` (so that its
    change commits with the answer kept for it)."""
    return _transactions(request.scope).unit_of_work(within=keyed_transaction(request.scope))


unit_of_work = Provide(request_unit_of_work, sync_to_thread=False)
