"""Bad bodies on every route that takes one: always a 4xx problem, never a 5xx (API.md).

The routes come from the app's route table (a handler with a ``data`` parameter), each called
by a role that may call it, so that the body is really read. Every integer and boolean the
schema declares in a body is also sent as a string (``"2"``, ``"true"``): the types are what
the schema says, so that is a 422 naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, cast

import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from route_matrix import MATRIX, ROLES, Role, Targets, World

from shop_kernel.settings import Settings

Client = AsyncTestClient[Litestar]
MiB = 1024 * 1024


def body_routes(app: Litestar) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        if "data" in handler.parsed_fn_signature.parameters
        for method in handler.http_methods
        if method not in {"OPTIONS", "HEAD"}
    }


# Checked against the route table below, so a new route with a body must join the table.
BODY_ROUTES = [
    ("PATCH", "/products/{sku:str}"),
    ("PATCH", "/users/me"),
    ("PATCH", "/users/{user_id:uuid}"),
    ("POST", "/auth/password-reset"),
    ("POST", "/auth/password-reset/confirm"),
    ("POST", "/auth/token"),
    ("POST", "/orders"),
    ("POST", "/orders/{order_id:str}/items"),
    ("POST", "/products"),
    ("POST", "/products/{sku:str}/stock"),
    ("POST", "/users"),
    ("POST", "/users/me/password"),
    ("PUT", "/orders/{order_id:str}/items/{sku:str}"),
]


# Bodies that set every integer and boolean the schema declares, where the route matrix's
# body leaves some out (checked against the schema below).
FULL_BODIES: dict[tuple[str, str], Callable[[Targets], dict[str, Any]]] = {
    ("POST", "/orders"): lambda t: {"items": [{"sku": t.sku, "quantity": 1}]},
    ("PATCH", "/products/{sku:str}"): lambda _t: {
        "name": "Renamed", "price": {"amount": 100, "currency": "EUR"}, "is_active": True,
    },
}  # fmt: skip


def full_body(method: str, route: str, targets: Targets) -> dict[str, Any]:
    fuller = FULL_BODIES.get((method, route))
    return fuller(targets) if fuller else (MATRIX[(method, route)].body(targets) or {})


def allowed_role(expected: dict[Role, int]) -> Role:
    # A route nobody gets a success from without a secret (a reset token): anyone, then.
    ordered: tuple[Role, ...] = ("owner", "admin", "other", *ROLES)
    return next((role for role in ordered if expected[role] < 300), "anonymous")


def wrong_types(valid: dict[str, Any]) -> list[dict[str, Any]]:
    """The valid body with one field of the wrong type each time."""
    variants = []
    for key, value in valid.items():
        for wrong in ([], {"x": 1}, "text", 1.5, True):
            if type(wrong) is not type(value):
                variants.append({**valid, key: wrong})
                break
    return variants


def spelled_as_strings(node: Any, where: str = "") -> list[tuple[str, Any]]:
    """The body with one integer or boolean, at any depth, spelled as a JSON string each time
    (``2`` -> ``"2"``, ``true`` -> ``"true"``), and the field's name as API.md writes it."""
    if isinstance(node, dict):
        mapping = cast("dict[str, Any]", node)
        return [
            (path, {**mapping, key: new})
            for key, value in mapping.items()
            for path, new in spelled_as_strings(value, f"{where}.{key}" if where else key)
        ]
    if isinstance(node, list):
        items = cast("list[Any]", node)
        return [
            (path, [*items[:index], new, *items[index + 1 :]])
            for index, value in enumerate(items)
            for path, new in spelled_as_strings(value, f"{where}[{index}]")
        ]
    return [(where, json.dumps(node))] if isinstance(node, int) else []


def typed_fields(schema: Any, schemas: dict[str, Any], where: str = "") -> set[str]:
    """Every integer and boolean field of a body's schema (list items as ``[0]``)."""
    if not isinstance(schema, dict):
        return set()
    node = cast("dict[str, Any]", schema)
    if "$ref" in node:
        return typed_fields(schemas[str(node["$ref"]).rsplit("/", 1)[-1]], schemas, where)
    kinds = node.get("type")
    kinds = set(kinds) if isinstance(kinds, list) else {kinds}
    found = {where} if kinds & {"integer", "boolean"} else set()
    for name, value in cast("dict[str, Any]", node.get("properties", {})).items():
        found |= typed_fields(value, schemas, f"{where}.{name}" if where else name)
    found |= typed_fields(node.get("items"), schemas, f"{where}[0]")
    for key in ("oneOf", "anyOf", "allOf"):
        for alternative in cast("list[Any]", node.get(key, [])):
            found |= typed_fields(alternative, schemas, where)
    return found


def long_strings(valid: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**valid, key: "x" * 1_000_000} for key, v in valid.items() if isinstance(v, str)]


def nested(depth: int) -> bytes:
    return b'{"a": ' + b"[" * depth + b"]" * depth + b"}"


def test_the_bad_input_table_covers_every_route_with_a_body(shop_app: Litestar) -> None:
    assert body_routes(shop_app) == set(BODY_ROUTES)


async def test_the_bodies_sent_set_every_integer_and_boolean_of_the_schema(
    shop_client: Client,
) -> None:
    document = (await shop_client.get("/schema/openapi.json")).json()
    schemas = document["components"]["schemas"]
    targets = Targets("owner", "owner@example.com", "order", "SKU-1")
    missing: dict[str, set[str]] = {}
    for method, route in BODY_ROUTES:
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route)
        body = document["paths"][path][method.lower()]["requestBody"]
        declared = typed_fields(body["content"]["application/json"]["schema"], schemas)
        sent = {re.sub(r"\[\d+\]", "[0]", where) for where, _ in spelled_as_strings(
            full_body(method, route, targets))}  # fmt: skip
        if declared - sent:
            missing[f"{method} {route}"] = declared - sent
    assert missing == {}, "give these routes a body in FULL_BODIES that sets these fields"


@pytest.mark.parametrize(("method", "route"), BODY_ROUTES, ids=str)
async def test_bad_bodies_get_a_problem_never_a_server_error(
    shop_client: Client, shop_settings: Settings, method: str, route: str
) -> None:
    rule = MATRIX[(method, route)]
    world = World(shop_client, shop_settings)
    await world.enter()
    role = allowed_role(rule.expected)
    targets = await world.targets()
    optional_body = rule.body(targets) is None  # POST /orders: no body (or null) is no items
    valid = full_body(method, route, targets)
    headers = {**world.headers[role], "Content-Type": "application/json"}
    raw_cases: list[tuple[str, bytes, dict[str, str]]] = [
        ("malformed JSON", b'{"a": ', headers),
        ("not an object", b"[1, 2, 3]", headers),
        ("deeply nested", nested(100_000), headers),
        ("over 1 MiB", b'{"a": "' + b"x" * (MiB + 10) + b'"}', headers),
        ("an unknown field", json.dumps({**valid, "zzz_unknown": 1}).encode(), headers),
        ("text/plain", json.dumps(valid).encode(), {**headers, "Content-Type": "text/plain"}),
    ]  # fmt: skip
    if not optional_body:
        raw_cases.append(("null", b"null", headers))
    strings = [k for k, v in valid.items() if isinstance(v, str)]
    integers = [k for k, v in valid.items() if isinstance(v, int) and not isinstance(v, bool)]
    if strings:
        poisoned = {**valid, **dict.fromkeys(strings, "a\x00b")}
        raw_cases.append(("a null byte", json.dumps(poisoned).encode(), headers))
    if integers:
        huge = {**valid, **dict.fromkeys(integers, 2**64)}
        raw_cases.append(("a 65-bit integer", json.dumps(huge).encode(), headers))
    raw_cases += [(f"wrong type {v}", json.dumps(v).encode(), headers) for v in wrong_types(valid)]
    raw_cases += [("1 MB string", json.dumps(v).encode(), headers) for v in long_strings(valid)]
    spelled = spelled_as_strings(valid)
    raw_cases += [(f"{where} as a string", json.dumps(v).encode(), headers) for where, v in spelled]
    if valid:
        raw_cases.append(("missing fields", b"{}", headers))
    answers: dict[str, int] = {}
    fields: dict[str, list[str]] = {}
    for name, content, sent_headers in raw_cases:
        response = await shop_client.request(
            method, rule.path(targets), content=content, headers=sent_headers
        )
        answers[name] = response.status_code
        if response.status_code == 422:
            fields[name] = [error["field"] for error in response.json().get("errors", [])]
        assert response.status_code < 500, (name, response.text[:300])
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json"), name
    # Every case but "missing fields" (a route whose fields are all optional takes {}) is a
    # body the route cannot take.
    accepted = {n: code for n, code in answers.items() if code < 400 and n != "missing fields"}
    assert accepted == {}, accepted
    assert answers["over 1 MiB"] == 413
    assert answers["text/plain"] == 415
    for where, _ in spelled:
        assert answers[f"{where} as a string"] == 422, where
        assert fields[f"{where} as a string"] == [where]
