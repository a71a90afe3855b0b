"""What the OpenAPI document says beyond what Litestar infers from the handlers.

- Every error is an RFC 9457 problem (``application/problem+json``); each operation lists the
  statuses it can answer with, from what the route is: public or not, admins only, with a
  body, with path parameters, guarded by ``If-Match``, rate limited, a command.
- Operations open to anyone need no token (``security: []``); open reads take one optionally.
- A body whose handler has a default for it may be left out (``POST /orders``: no items).
- ``/metrics`` answers in the Prometheus text format.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from litestar import Litestar
from litestar.routes import HTTPRoute

from shop_kernel.auth import admin_only

PROBLEM = "#/components/schemas/Problem"
_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_REASONS = {
    400: "The request is malformed or a parameter is invalid",
    401: "No valid access token",
    403: "Signed in, but not allowed",
    404: "No such resource (or not yours)",
    409: "Conflicts with the current state, or the same Idempotency-Key is still running",
    412: "If-Match names a version that is no longer current",
    413: "The body is over the size limit",
    415: "The body is not application/json",
    422: "Well formed, but breaks a rule",
    429: "Too many requests; see Retry-After",
    500: "An unexpected error; it is logged with the request id",
    503: "A store does not answer",
}


@dataclass(frozen=True)
class Access:
    """Who may call routes without a token: ``public(method, path)``; open reads take one
    optionally (``open_read(method, path)``)."""

    public: Callable[[str, str], bool]
    open_read: Callable[[str, str], bool]
    rate_limited: Iterable[tuple[str, str]]


def complete(app: Litestar, document: dict[str, Any], access: Access) -> None:
    """Add the problem responses and the per-operation security to ``document`` in place."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = _PROBLEM_SCHEMA
    _close_request_bodies(document, schemas)
    limited = set(access.rate_limited)
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or route.path.startswith("/schema"):
            continue
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path)
        for handler in route.route_handlers:
            for method in handler.http_methods - {"OPTIONS", "HEAD"}:
                operation = document["paths"].get(path, {}).get(method.lower())
                if operation is None:
                    continue
                public = access.public(method, route.path)
                if public:
                    operation["security"] = []
                elif access.open_read(method, route.path):
                    operation["security"] = [{}, {"BearerToken": []}]
                statuses = _statuses(method, route.path, handler, public=public, limited=limited)
                _problems(operation, statuses)
                _optional_body(operation, handler)
    metrics = document["paths"].get("/metrics", {}).get("get")
    if metrics is not None:
        metrics["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}


def _close_request_bodies(document: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Bodies are closed (API.md): an unknown field is refused, and the schema says so."""
    pending: list[Any] = []
    for item in document["paths"].values():
        for operation in _mapping(item).values():
            body = _mapping(_mapping(operation).get("requestBody"))
            pending.extend(
                _mapping(media).get("schema") for media in _mapping(body.get("content")).values()
            )
    seen: set[int] = set()
    while pending:
        node = _mapping(pending.pop())
        if not node or id(node) in seen:
            continue
        seen.add(id(node))
        if "$ref" in node:
            pending.append(schemas.get(str(node["$ref"]).rsplit("/", 1)[-1]))
        if node.get("type") == "object" and "properties" in node:
            node["additionalProperties"] = False
        pending.extend(_mapping(node.get("properties")).values())
        for key in ("items", "oneOf", "anyOf", "allOf"):
            value: Any = node.get(key)
            pending.extend(cast("list[Any]", value) if isinstance(value, list) else [value])


def _optional_body(operation: dict[str, Any], handler: Any) -> None:
    """Litestar marks every body required; one with a default is not (the handler takes none)."""
    body = handler.parsed_fn_signature.parameters.get("data")
    if body is not None and body.has_default and "requestBody" in operation:
        operation["requestBody"]["required"] = False


def _mapping(value: Any) -> dict[str, Any]:
    return cast("dict[str, Any]", value) if isinstance(value, dict) else {}


def _statuses(
    method: str, path: str, handler: Any, *, public: bool, limited: set[tuple[str, str]]
) -> set[int]:
    """What a route can answer besides success, from what it is."""
    statuses = {400, 500}
    signature = handler.parsed_fn_signature.parameters
    if not public or (method, path) == ("POST", "/auth/token"):
        statuses.add(401)
    if not public and admin_only in handler.resolve_guards():
        statuses.add(403)
    if "{" in path:
        statuses.add(404)
    if "data" in signature:
        statuses |= {413, 415, 422}
    if method != "GET":
        statuses |= {404, 409, 422}
    if "cursor" in signature:
        statuses.add(422)  # a cursor this list never handed out
    if "if_match" in signature:
        statuses.add(412)
    if (method, path) in limited:
        statuses.add(429)
    if not path.startswith(("/health/live", "/metrics", "/schema")):
        statuses.add(503)  # a store that does not answer (readiness names which)
    if (method, path) == ("GET", "/orders"):
        statuses.add(403)  # a customer asking for another customer's orders
    return statuses


def _problems(operation: dict[str, Any], statuses: set[int]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _REASONS[status],
            "content": {"application/problem+json": {"schema": {"$ref": PROBLEM}}},
        }
