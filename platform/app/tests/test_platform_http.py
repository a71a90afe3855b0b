"""The app's operational surface: health, errors as problem details, OpenAPI, metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator

import msgspec
import pytest
import structlog
from litestar import Litestar, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
from sqlalchemy import text

from shop_devkit.embedded import free_port
from shop_devkit.plugin import MakeDatabase
from shop_kernel.domain import BusinessRuleViolated, Conflict, NotFound
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine
from shop_platform.app import create_app
from shop_platform.contexts import migration_targets

PROBLEM = "application/problem+json"


async def test_liveness_answers_ok(shop_client: AsyncTestClient[Litestar]) -> None:
    response = await shop_client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readiness_queries_every_store(shop_client: AsyncTestClient[Litestar]) -> None:
    response = await shop_client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"postgres", "mongodb", "redis", "outbox"}
    # The backlog (other tests' events, with no worker running here) is only reported.
    assert {k: v for k, v in body["checks"].items() if k != "outbox"} == {
        "postgres": "ok", "mongodb": "ok", "redis": "ok",
    }  # fmt: skip


async def test_a_down_mongodb_is_reported_but_leaves_the_api_ready(
    shop_settings: Settings,
) -> None:
    closed_port = free_port()
    settings = shop_settings.with_overrides(
        mongodb_url=f"mongodb://127.0.0.1:{closed_port}/?directConnection=true",
        health_timeout=1.0,
    )
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["mongodb"] != "ok"
    assert checks["postgres"] == "ok"
    assert checks["redis"] == "ok"
    assert live.status_code == 200


async def test_a_down_redis_makes_readiness_503_naming_it(shop_settings: Settings) -> None:
    settings = shop_settings.with_overrides(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", health_timeout=1.0
    )
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["redis"]


async def test_an_unmigrated_database_is_not_ready(
    shop_settings: Settings, make_database: MakeDatabase
) -> None:
    empty = make_database()
    settings = shop_settings.with_overrides(database_url=empty)
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["failing"] == ["postgres"]
    assert body["checks"]["outbox"] != "ok"  # no outbox table either, reported only
    assert "shop db upgrade" in body["checks"]["postgres"]


async def test_an_outbox_that_is_not_drained_is_reported_and_in_metrics_but_fails_nothing(
    shop_settings: Settings, make_database: MakeDatabase
) -> None:
    url = make_database(migration_targets())
    engine = create_engine(Settings(database_url=url))
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO messaging.outbox (event_id, event_type, aggregate_id, "
                "aggregate_version, payload, created_at) VALUES (gen_random_uuid(), "
                "'test.Stuck.v1', 'a-1', 1, '{}', now() - interval '2 minutes')"
            )
        )
    await engine.dispose()
    settings = shop_settings.with_overrides(database_url=url, outbox_max_age=60.0)
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
        ready = await client.get("/health/ready")
        for _ in range(50):
            metrics = (await client.get("/metrics")).text
            if "shop_outbox_backlog 1.0" in metrics:
                break
            await asyncio.sleep(0.1)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["outbox"].startswith("behind: the oldest of 1 unpublished")
    assert "shop_outbox_backlog 1.0" in metrics
    assert 'shop_table_rows{table="messaging.outbox"}' in metrics
    assert 'shop_table_rows{table="messaging.inbox"}' in metrics
    age = re.search(r"^shop_outbox_oldest_age_seconds (\S+)$", metrics, re.MULTILINE)
    assert age is not None
    assert float(age.group(1)) >= 120


async def test_an_unknown_route_is_a_404_problem(shop_client: AsyncTestClient[Litestar]) -> None:
    response = await shop_client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["status"] == 404
    assert body["title"] == "Not Found"
    assert body["type"] == "about:blank"
    assert body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]


async def test_a_wrong_method_is_a_405_problem(shop_client: AsyncTestClient[Litestar]) -> None:
    response = await shop_client.delete("/health/live")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["status"] == 405


async def test_a_sane_request_id_is_kept_and_a_missing_one_is_made(
    shop_client: AsyncTestClient[Litestar],
) -> None:
    given = await shop_client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    made = await shop_client.get("/health/live")
    hostile = await shop_client.get("/health/live", headers={"X-Request-ID": "a b\tc" * 50})
    assert given.headers["x-request-id"] == "abc-123"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])


async def test_the_access_log_line_carries_the_request_id_of_the_response(
    shop_client: AsyncTestClient[Litestar],
) -> None:
    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    access_logger = logging.getLogger("shop.access")
    level = access_logger.level
    access_logger.setLevel(logging.INFO)  # whatever the level the tests run at
    try:
        response = await shop_client.get("/no/such/thing", headers={"X-Request-ID": "trace-me"})
    finally:
        structlog.reset_defaults()
        access_logger.setLevel(level)
    access = [line for line in capture.entries if line["event"] == "request"]
    assert response.headers["x-request-id"] == "trace-me"
    assert access == [
        {
            "event": "request",
            "log_level": "info",
            "request_id": "trace-me",
            "method": "GET",
            "path": "/no/such/thing",
            "status": 404,
            "duration_ms": access[0]["duration_ms"],
        }
    ]


async def test_openapi_31_document_and_interactive_page(
    shop_client: AsyncTestClient[Litestar],
) -> None:
    document = await shop_client.get("/schema/openapi.json")
    page = await shop_client.get("/schema")
    assert document.status_code == 200
    schema = document.json()
    assert schema["openapi"].startswith("3.1")
    assert "/health/ready" in schema["paths"]
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "swagger" in page.text.lower()


async def test_the_served_openapi_document_is_valid_openapi_31(
    shop_client: AsyncTestClient[Litestar],
) -> None:
    # The whole document as served (after complete() added problems and security), checked
    # against the OpenAPI 3.1 schema: a client generator refuses an invalid one.
    document = (await shop_client.get("/schema/openapi.json")).json()
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in OpenAPIV31SpecValidator(document).iter_errors()
    ]
    assert errors == []


async def test_options_names_every_method_of_the_path_for_anyone(
    shop_app: Litestar, shop_client: AsyncTestClient[Litestar]
) -> None:
    # Litestar's own answer named only the first handler's methods (/orders: POST, no GET),
    # and ran the controller's guards (/notifications: the admin guard, a 500).
    table: dict[str, set[str]] = {}
    for route in shop_app.routes:
        if isinstance(route, HTTPRoute):
            table.setdefault(route.path, set()).update(route.methods)
    assert table["/orders"] >= {"GET", "POST"}
    guarded = await shop_client.options("/notifications?limit=1")
    assert guarded.status_code == 204, guarded.text
    for path, methods in table.items():
        concrete = re.sub(r"\{\w+:uuid\}", str(uuid.uuid4()), path)
        response = await shop_client.options(re.sub(r"\{[^}]+\}", "x", concrete))
        assert response.status_code == 204, (path, response.text)
        allowed = {m.strip() for m in response.headers["allow"].split(",")}
        assert allowed == methods | {"OPTIONS"}, path
        assert response.headers["x-request-id"]


async def test_metrics_are_prometheus_text_with_request_counts(
    shop_client: AsyncTestClient[Litestar],
) -> None:
    await shop_client.get("/no/such/thing")
    await shop_client.get("/health/live")
    response = await shop_client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE" in response.text


# ------------------------------------------------------------------ errors raised by handlers


class Part(msgspec.Struct, forbid_unknown_fields=True):
    count: int


class Echo(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    quantity: int
    active: bool = False
    parts: list[Part] = msgspec.field(default_factory=list[Part])


@post("/test/echo", sync_to_thread=False, exclude_from_auth=True)
def echo(data: JSONBody[Echo]) -> Echo:
    return data


@get("/test/echo", sync_to_thread=False, exclude_from_auth=True)
def echo_query(limit: FromQuery[int], active: FromQuery[bool]) -> dict[str, object]:
    return {"limit": limit, "active": active}


@post("/test/fail/{kind:str}", sync_to_thread=False, exclude_from_auth=True)
def fail(kind: FromPath[str]) -> None:
    errors: dict[str, Exception] = {
        "not-found": NotFound("order o-1 does not exist", order_id="o-1"),
        "conflict": Conflict("order o-1 is not a draft", order_status="pending"),
        "rule": BusinessRuleViolated("a line holds at most 1000 items", sku="ABC"),
        "bug": ZeroDivisionError("a bug"),
    }
    raise errors[kind]


@pytest.fixture
async def client_with_test_routes(
    shop_settings: Settings,
) -> AsyncIterator[AsyncTestClient[Litestar]]:
    app = create_app(shop_settings, configure_logs=False)
    app.register(echo)
    app.register(echo_query)
    app.register(fail)
    async with AsyncTestClient(app=app) as client:
        yield client


@pytest.mark.parametrize(
    ("kind", "status", "code", "fact"),
    [
        ("not-found", 404, "not-found", ("order_id", "o-1")),
        ("conflict", 409, "conflict", ("order_status", "pending")),
        ("rule", 422, "business-rule-violated", ("sku", "ABC")),
    ],
)
async def test_domain_errors_map_to_problems_with_their_facts(
    client_with_test_routes: AsyncTestClient[Litestar],
    kind: str,
    status: int,
    code: str,
    fact: tuple[str, str],
) -> None:
    response = await client_with_test_routes.post(f"/test/fail/{kind}")
    assert response.status_code == status
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == f"/problems/{code}"
    assert body["status"] == status
    assert body["detail"]
    assert body[fact[0]] == fact[1]


async def test_an_unexpected_error_is_a_500_problem_that_hides_the_cause(
    client_with_test_routes: AsyncTestClient[Litestar],
) -> None:
    response = await client_with_test_routes.post("/test/fail/bug")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "ZeroDivision" not in response.text
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_an_invalid_body_is_a_422_problem_naming_the_field(
    client_with_test_routes: AsyncTestClient[Litestar],
) -> None:
    response = await client_with_test_routes.post(
        "/test/echo", json={"name": "x", "quantity": "many"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"] == "/problems/validation"
    assert body["errors"] == [{"field": "quantity", "message": "Expected `int`, got `str`"}]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "quantity": "2"}, "quantity"),
        ({"name": "x", "quantity": 2, "active": "true"}, "active"),
        ({"name": "x", "quantity": 2, "active": 1}, "active"),
        ({"name": "x", "quantity": 2.0}, "quantity"),
        ({"name": "x", "quantity": 2, "parts": [{"count": 1}, {"count": "1"}]}, "parts[1].count"),
    ],
    ids=["string-for-integer", "string-for-boolean", "integer-for-boolean", "float", "nested"],
)
async def test_a_body_is_decoded_as_strictly_as_its_schema_says(
    client_with_test_routes: AsyncTestClient[Litestar], body: dict[str, object], field: str
) -> None:
    # Litestar converts arguments in msgspec's lax mode, fit for query strings: in a body a
    # string is no integer and no boolean, whatever it spells.
    response = await client_with_test_routes.post("/test/echo", json=body)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_query_parameters_still_convert_from_their_strings(
    client_with_test_routes: AsyncTestClient[Litestar],
) -> None:
    response = await client_with_test_routes.get("/test/echo?limit=2&active=true")
    assert response.status_code == 200, response.text
    assert response.json() == {"limit": 2, "active": True}
    fine = await client_with_test_routes.post("/test/echo", json={"name": "x", "quantity": 2})
    assert fine.json() == {"name": "x", "quantity": 2, "active": False, "parts": []}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b'{"name": "x", "quantity": 1, "role": "admin"}', 422),
        (b"[]", 422),
        (b"null", 422),
    ],
    ids=["malformed", "unknown-field", "wrong-shape", "null"],
)
async def test_bad_bodies_are_4xx_problems(
    client_with_test_routes: AsyncTestClient[Litestar], body: bytes, status: int
) -> None:
    # What cannot be read is a bad request; what is read but is not what the schema says,
    # unprocessable.
    response = await client_with_test_routes.post(
        "/test/echo", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_a_body_over_the_limit_is_413(
    client_with_test_routes: AsyncTestClient[Litestar],
) -> None:
    big = json.dumps({"name": "x" * (1024 * 1024 + 1), "quantity": 1})
    response = await client_with_test_routes.post(
        "/test/echo", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_a_dropped_database_connection_is_a_503_to_retry_and_the_next_request_works(
    shop_client: AsyncTestClient[Litestar], shop_settings: Settings
) -> None:
    body = {"email": "dropped@example.com", "password": "a long passphrase", "name": "D"}
    made = await shop_client.post("/users", json=body)
    assert made.status_code == 201
    # The API keeps no ping before each checkout: a connection the server dropped (a restart,
    # a failover) meets the one request that takes it from the pool.
    engine = create_engine(shop_settings)
    try:
        async with engine.begin() as conn:
            dropped = await conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'shop-api' AND datname = current_database()"
            ))  # fmt: skip
            assert any(row[0] for row in dropped)
    finally:
        await engine.dispose()
    statuses = []
    for _ in range(5):
        again = await shop_client.post(
            "/users",
            json={"email": f"after-{len(statuses)}@example.com", "password": "a long passphrase",
                  "name": "D"},
        )  # fmt: skip
        statuses.append(again.status_code)
        if again.status_code == 503:
            assert again.headers["retry-after"] == "1"
            assert again.headers["content-type"].startswith("application/problem+json")
    assert 503 in statuses
    assert 500 not in statuses
    assert statuses[-1] == 201  # the pool replaced what broke
