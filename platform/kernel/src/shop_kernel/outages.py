"""Telling an outage from a bug: is a failure a dependency that cannot be reached right now?

A store that is down, restarting or failing over, a mail server that says "try later", a
payment provider answering 503: the same work succeeds once it is back, so it is retried for
as long as the outage allowance lasts and never counts against the retry budget of a handler
that is itself broken. Everything else (a constraint violated, a bug, a deadlock) is not an
outage.

Timeouts: a store that did not answer within its bound is out of reach right now:
connecting, waiting for a pooled connection, a Redis command, a PostgreSQL server gone
silent, and any MongoDB operation (pymongo's one deadline covers choosing the server, the
pool, the network and the server's work, and the read store only sees keyed reads and
versioned writes: a timeout there is the store slow or away). So is a PostgreSQL lock timeout
(55P03): another transaction holds what this one needs, and it ends (or
``idle_in_transaction_session_timeout`` ends it), so the same work succeeds later; a wait for
a lock ends as a lock timeout, because the lock timeout must be shorter than the statement
timeout. A statement timeout (57014) is not an outage: the server answered, the statement
itself took too long, and retried for a day it would run the same slow statement again and
again. It spends the retry budget and is dead-lettered, where it is seen (and replayed once
the statement is fixed).
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import psycopg
from pymongo.errors import ConnectionFailure, PyMongoError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class Unavailable(Exception):
    """A dependency outside the service cannot take the work now and asks to be tried later
    (a mail server's 4xx, a provider's 503). Adapters raise a subclass of it."""


# PostgreSQL's own "not now" answers: connection exceptions (class 08), a server shutting
# down or starting (57P01..57P03), no connection slot free (53300), a lock held by another
# transaction for longer than lock_timeout (55P03).
_POSTGRES_NOT_NOW = frozenset({"57P01", "57P02", "57P03", "53300", "55P03"})
_NETWORK_ERRNOS = frozenset({
    errno.ECONNREFUSED, errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT,
    errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN,
})  # fmt: skip


def is_outage(failure: BaseException) -> bool:
    """Whether ``failure`` (or what caused it) is a dependency out of reach."""
    return any(_is_outage_itself(cause) for cause in _chain(failure))


def _is_outage_itself(failure: BaseException) -> bool:
    if isinstance(failure, Unavailable | ConnectionFailure | RedisConnectionError):
        return True
    # Besides the ConnectionFailure timeouts: ExecutionTimeout, WTimeoutError and the like.
    if isinstance(failure, RedisTimeoutError | PoolTimeout | TimeoutError | socket.gaierror) or (
        isinstance(failure, PyMongoError) and failure.timeout
    ):
        return True
    if isinstance(failure, DBAPIError) and failure.connection_invalidated:
        return True
    if isinstance(failure, psycopg.OperationalError):
        state = failure.sqlstate
        return state is None or state.startswith("08") or state in _POSTGRES_NOT_NOW
    if isinstance(failure, ConnectionError):
        return True
    return isinstance(failure, OSError) and failure.errno in _NETWORK_ERRNOS


def _chain(failure: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = failure
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__
