"""Schemathesis against the app's own OpenAPI document, served for real, with every check.

Each generated request is sent anonymously, as a customer and as an admin. CI runs a few
examples per operation; ``uv run pytest -m fuzz --examples=N`` runs a long pass.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from litestar import Litestar
from schemathesis.config import SchemathesisConfig

from shop_kernel.settings import Settings
from shop_platform.admins import create_admin
from shop_platform.testing import TEST_PASSWORD

# Every check, as configured for this API: data valid by the schema may still break a
# business rule the schema cannot state (an email that does not exist as an address, a sku
# that is not on sale, a cursor this list never handed out): API.md answers those with 422.
EXPECTED = ["2xx", "401", "403", "404", "409", "422", "429"]
CONFIG = SchemathesisConfig.from_dict({
    "checks": {"positive_data_acceptance": {"expected-statuses": EXPECTED}},
    # A reset token of the right form that nobody was sent is 400 (API.md).
    "operations": [{
        "include-path": "/auth/password-reset/confirm",
        "checks": {"positive_data_acceptance": {"expected-statuses": [*EXPECTED, "400"]}},
    }],
})  # fmt: skip
CI_EXAMPLES = 5
LONG_EXAMPLES = 200


class ServedApp:
    """The app under uvicorn in a thread of its own (its own event loop and stores)."""

    def __init__(self, app: Litestar) -> None:
        import uvicorn  # noqa: PLC0415

        config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_config=None,
                                access_log=False)  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the app did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def served(
    shop_app: Litestar, shop_settings: Settings
) -> Iterator[tuple[str, dict[str, dict[str, str]]]]:
    with ServedApp(shop_app) as url:
        admin_email = f"fuzz-admin-{uuid.uuid4().hex[:8]}@example.com"
        asyncio.run(create_admin(shop_settings, admin_email, TEST_PASSWORD))
        customer_email = f"fuzz-{uuid.uuid4().hex[:8]}@example.com"
        with httpx.Client(base_url=url) as client:
            client.post("/users", json={"email": customer_email, "password": TEST_PASSWORD,
                                        "name": "Fuzz"}).raise_for_status()  # fmt: skip
            tokens = {}
            for role, email in (("customer", customer_email), ("admin", admin_email)):
                answer = client.post(
                    "/auth/token", json={"email": email, "password": TEST_PASSWORD}
                )
                answer.raise_for_status()
                tokens[role] = {"Authorization": f"Bearer {answer.json()['access_token']}"}
        yield url, {"anonymous": {}, **tokens}


def fuzz(url: str, roles: dict[str, dict[str, str]], examples: int) -> list[str]:
    """Every operation, positive and negative data, each case as every role: the failures."""
    from schemathesis import GenerationMode  # noqa: PLC0415

    api = schemathesis.openapi.from_url(f"{url}/schema/openapi.json", config=CONFIG)
    failures: list[str] = []
    for result in api.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz_one(result.ok(), mode, url, roles, examples)
    return failures


def _fuzz_one(
    operation: Any, mode: Any, url: str, roles: dict[str, dict[str, str]], examples: int
) -> list[str]:
    failures: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=examples,
              database=None, phases=[Phase.explicit, Phase.generate])  # fmt: skip
    def run(case: Any) -> None:
        # A case that negates the headers (a missing or malformed Authorization among them)
        # goes as generated: a role's token would put back what the case took away.
        for role, headers in (_as_generated(case) or roles).items():
            try:
                case.call_and_validate(base_url=url, headers=headers)
            except (AssertionError, BaseExceptionGroup) as failure:
                failures.append(f"{operation.label} [{mode.value}, {role}]: {failure}")
                raise

    try:
        run()
    except (AssertionError, BaseExceptionGroup):
        pass  # recorded; the next operation is tried too
    except Unsatisfiable:
        pass  # an operation without any input has no negative case
    return failures


@pytest.mark.parametrize("examples", [CI_EXAMPLES])
def test_the_api_holds_to_its_schema(
    served: tuple[str, dict[str, dict[str, str]]], request: pytest.FixtureRequest, examples: int
) -> None:
    url, roles = served
    failures = fuzz(url, roles, _examples(request, examples))
    assert failures == [], "\n\n".join(failures)


@pytest.mark.fuzz
def test_the_api_holds_to_its_schema_long(
    served: tuple[str, dict[str, dict[str, str]]], request: pytest.FixtureRequest
) -> None:
    url, roles = served
    failures = fuzz(url, roles, _examples(request, LONG_EXAMPLES))
    assert failures == [], "\n\n".join(failures)


def _examples(request: pytest.FixtureRequest, default: int) -> int:
    chosen: int | None = request.config.getoption("--examples")
    return chosen if chosen is not None else default


def _as_generated(case: Any) -> dict[str, dict[str, str]] | None:
    from schemathesis.core.parameters import ParameterLocation  # noqa: PLC0415

    header = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    return {"as generated": {}} if header is not None and header.mode.is_negative else None


def test_every_integer_bound_in_the_schema_is_exact_as_a_json_number(
    served: tuple[str, dict[str, dict[str, str]]],
) -> None:
    # A bound beyond 2**53 reads back as a larger float: generators then send values over
    # the real bound that the schema seems to allow (found by fuzzing with 2**63 - 1).
    url, _ = served
    document = httpx.get(f"{url}/schema/openapi.json").json()
    bounds: list[tuple[str, float]] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in {"maximum", "minimum"} and isinstance(value, int | float):
                    bounds.append((f"{where}.{key}", value))
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}[{index}]")

    walk(document, "$")
    assert bounds, "the document states integer bounds"
    assert [(where, b) for where, b in bounds if abs(b) > 2**53 - 1] == []
