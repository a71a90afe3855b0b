"""Every error leaves as RFC 9457 problem details; this is the one place that maps them."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import ProblemDetailsException
from litestar.types import ExceptionHandlersMap
from pymongo.errors import ConnectionFailure, PyMongoError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shop_kernel.domain import (
    BusinessRuleViolated,
    Conflict,
    DomainError,
    NotAuthenticated,
    NotFound,
    PreconditionFailed,
    RequestRefused,
)
from shop_kernel.log import current_request_id, get_logger

log = get_logger(__name__)

PROBLEM_BASE = "/problems/"

_DOMAIN_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (RequestRefused, 400),
    (NotAuthenticated, 401),
    (NotFound, 404),
    (PreconditionFailed, 412),
    (Conflict, 409),
    (BusinessRuleViolated, 422),
)


def problem(
    request: Request[Any, Any, Any],
    status: int,
    *,
    detail: str,
    code: str | None = None,
    title: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    members: dict[str, Any] = {"request_id": current_request_id(), **(extra or {})}
    return ProblemDetailsException(
        status_code=status,
        type_=f"{PROBLEM_BASE}{code}" if code else "about:blank",
        title=title or HTTPStatus(status).phrase,
        detail=detail,
        instance=request.url.path,
        extra=members,
        headers=headers,
    ).to_response(request)


def http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, dict) else None
    status = exc.status_code
    detail = (
        exc.detail if exc.detail != HTTPStatus(status).phrase else _default_detail(request, status)
    )
    return problem(request, status, detail=detail, extra=extra, headers=exc.headers)


def validation_exception(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[Any]:
    errors = [_field_error(item) for item in exc.extra] if isinstance(exc.extra, list) else []
    return problem(
        request,
        exc.status_code,
        code="validation",
        title="The request is not valid",
        detail=exc.detail,
        extra={"errors": errors},
    )


def domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    status = next((s for kind, s in _DOMAIN_STATUS if isinstance(exc, kind)), 422)
    return problem(request, status, code=exc.code, detail=exc.message, extra=dict(exc.details))


def store_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """A store that dropped the connection (a restart, a failover), does not answer, or did
    not within its bound: 503, to be retried. That covers PostgreSQL's connect, statement and
    lock timeouts (OperationalError: QueryCanceled 57014, LockNotAvailable 55P03), a pool
    with no connection free in time, and every MongoDB error that is a timeout (pymongo's
    ``timeout``: NetworkTimeout, ServerSelectionTimeoutError, ExecutionTimeout...). The
    pools replace what broke, so the next request gets a fresh connection. Any other store
    error is a bug, and a 500."""
    if isinstance(exc, DBAPIError) and not (
        exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    ):
        return unexpected_error(request, exc)
    if isinstance(exc, PyMongoError) and not (isinstance(exc, ConnectionFailure) or exc.timeout):
        return unexpected_error(request, exc)
    log.warning("store unavailable", path=request.url.path, error=repr(exc))
    response = problem(request, 503, detail="A store does not answer; try again shortly.")
    response.headers["Retry-After"] = "1"
    return response


def unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", path=request.url.path, method=request.method, exc_info=exc)
    return problem(
        request,
        500,
        detail="An unexpected error occurred; it has been logged with this request id.",
    )


def _default_detail(request: Request[Any, Any, Any], status: int) -> str:
    if status == 404:
        return f"No resource at {request.url.path}"
    if status == 405:
        return f"{request.method} is not allowed on {request.url.path}"
    return HTTPStatus(status).description


def _field_error(item: Any) -> dict[str, str]:
    if not isinstance(item, dict):
        return {"field": "", "message": str(item)}
    message = str(item.get("message", ""))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
    key = item.get("key")  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    field = _field_from_message(message) if key in (None, "", "data") else str(key)  # pyright: ignore[reportUnknownArgumentType]
    return {"field": field, "message": message.split(" - at `", 1)[0]}


_UNKNOWN_FIELD = re.compile(r"unknown field `([^`]*)`")


def _field_from_message(message: str) -> str:
    """msgspec says where: ``... - at `$.items[0].quantity``` -> ``items[0].quantity``.

    An unknown field is named by the message itself: ``Object contains unknown field `role```
    at ``$.items[0]`` is ``items[0].role``.
    """
    text, _, where = message.partition(" - at `$")
    where = where.rstrip("`").removeprefix(".")
    unknown = _UNKNOWN_FIELD.search(text)
    if unknown is not None:
        return f"{where}.{unknown.group(1)}" if where else unknown.group(1)
    return where


# Litestar types handlers over Request[Any, Any, Any], which strict mode sees as unknown.
EXCEPTION_HANDLERS: ExceptionHandlersMap = {  # pyright: ignore[reportUnknownVariableType]
    ValidationException: validation_exception,
    HTTPException: http_exception,
    DomainError: domain_error,
    DBAPIError: store_error,
    PoolTimeout: store_error,
    RedisConnectionError: store_error,
    RedisTimeoutError: store_error,
    PyMongoError: store_error,
    Exception: unexpected_error,
}
