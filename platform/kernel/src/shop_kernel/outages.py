"""Telling an outage from a bug: is a failure a dependency that cannot be reached right now?

A store that is down, restarting or failing over, a mail server that says "try later", a
payment provider answering 503: the same work succeeds once it is back, so it is retried for
as long as the outage allowance lasts and never counts against the retry budget of a handler
that is itself broken. Everything else (a constraint violated, a bug, a deadlock) is not an
outage.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Iterator

import psycopg
from pymongo.errors import ConnectionFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class Unavailable(Exception):
    """A dependency outside the service cannot take the work now and asks to be tried later
    (a mail server's 4xx, a provider's 503). Adapters raise a subclass of it."""


# PostgreSQL's own "not now" answers: connection exceptions (class 08), a server shutting
# down or starting (57P01..57P03), no connection slot free (53300).
_POSTGRES_NOT_NOW = frozenset({"57P01", "57P02", "57P03", "53300"})
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
    if isinstance(failure, RedisTimeoutError | PoolTimeout | TimeoutError | socket.gaierror):
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
