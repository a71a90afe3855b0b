"""Schemathesis against the app's own OpenAPI document, served for real, with every check.

Every operation gets the coverage phase (each boundary the schema states, each parameter left
out or of the wrong type, the methods a path does not declare, OPTIONS among them) and then
generated positive and negative data. The long pass (``uv run pytest -m fuzz --examples=N``)
sends each case anonymously, as a customer and as an admin; CI sends each case as one of them
in turn and generates a few examples per operation, to stay short.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from litestar import Litestar
from schemathesis.config import SchemathesisConfig

from shop_devkit.app_plugin import TEST_PASSWORD
from shop_kernel.settings import Settings
from shop_platform.admins import create_admin

# Every check, as configured for this API: data valid by the schema may still break a
# business rule the schema cannot state (an email that does not exist as an address, a sku
# that is not on sale, a cursor of the stated form that this list never handed out, an
# Idempotency-Key used before with another body): API.md answers those with 422; an If-Match
# naming a version that is no longer current, with 412.
EXPECTED = ["2xx", "401", "403", "404", "409", "412", "422", "429"]
CONFIG = SchemathesisConfig.from_dict({
    "checks": {"positive_data_acceptance": {"expected-statuses": EXPECTED}},
    # A reset token of the right form that nobody was sent is 400 (API.md).
    "operations": [{
        "include-path": "/auth/password-reset/confirm",
        "checks": {"positive_data_acceptance": {"expected-statuses": [*EXPECTED, "400"]}},
    }],
})  # fmt: skip
CI_EXAMPLES = 5
LONG_EXAMPLES = 100


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


@dataclass
class Pass:
    """What one fuzzing pass did: cases generated, requests sent, and the failures.

    A thorough pass sends each case as every role and runs every coverage case; a short one
    (CI) sends each case as the next role in turn, and of the coverage cases runs the positive
    ones, the request-shape probes (undeclared methods, OPTIONS among them, and content types)
    and the first negative case of each kind for each operation.
    """

    thorough: bool
    cases: int = 0
    requests: int = 0
    failures: list[str] = field(default_factory=list[str])
    seconds: dict[str, float] = field(default_factory=lambda: {"coverage": 0.0, "fuzzing": 0.0})

    def summary(self, examples: int) -> str:
        return (
            f"fuzzing: {examples} examples per operation and mode, {self.cases} cases, "
            f"{self.requests} requests, {len(self.failures)} failures; "
            + ", ".join(f"{phase} {spent:.1f} s" for phase, spent in self.seconds.items())
        )


def fuzz(url: str, roles: dict[str, dict[str, str]], examples: int, *, thorough: bool) -> Pass:
    """Every operation: the coverage phase, then generated positive and negative data."""
    from schemathesis import GenerationMode  # noqa: PLC0415

    api = schemathesis.openapi.from_url(f"{url}/schema/openapi.json", config=CONFIG)
    done = Pass(thorough=thorough)
    for result in api.get_all_operations():
        operation = result.ok()
        started = time.monotonic()
        _cover(operation, url, roles, done)
        covered = time.monotonic()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_one(operation, mode, url, roles, examples, done)
        done.seconds["coverage"] += covered - started
        done.seconds["fuzzing"] += time.monotonic() - covered
    return done


def _call(case: Any, url: str, roles: dict[str, dict[str, str]], label: str, done: Pass) -> bool:
    """The case as every role (or as generated, when it negates the headers): all passed."""
    done.cases += 1
    if not done.thorough:
        role = list(roles)[done.cases % len(roles)]
        roles = {role: roles[role]}
    # A case that negates the headers (a missing or malformed Authorization among them)
    # goes as generated: a role's token would put back what the case took away.
    for role, headers in (_as_generated(case) or roles).items():
        done.requests += 1
        try:
            case.call_and_validate(base_url=url, headers=headers)
        except (AssertionError, BaseExceptionGroup) as failure:
            done.failures.append(f"{label} [{role}]: {failure}")
            return False
    return True


def _cover(operation: Any, url: str, roles: dict[str, dict[str, str]], done: Pass) -> None:
    """The cases of the coverage phase, each one whatever the others did."""
    from schemathesis import GenerationMode  # noqa: PLC0415
    from schemathesis.generation.drivers import CoverageGenerator  # noqa: PLC0415
    from schemathesis.generation.feedback import FeedbackSources  # noqa: PLC0415
    from schemathesis.generation.meta import REQUEST_SHAPE_PROBES  # noqa: PLC0415
    from schemathesis.generation.overrides import Override  # noqa: PLC0415

    generation = operation.schema.config.generation_for(operation=operation, phase="coverage")
    cases = CoverageGenerator(
        operation=operation, generation_modes=generation.modes, generation_config=generation,
        auth_storage=None, override=Override(), feedback=FeedbackSources(),
    )  # fmt: skip
    kinds_seen: set[object] = set()
    for case in cases:
        data = case.meta.phase.data
        if not done.thorough and case.meta.generation.mode == GenerationMode.NEGATIVE:
            if data.scenario in kinds_seen and data.scenario not in REQUEST_SHAPE_PROBES:
                continue
            kinds_seen.add(data.scenario)
        label = f"{case.method.upper()} {operation.path} [coverage: {data.description}]"
        _call(case, url, roles, label, done)


def _fuzz_one(
    operation: Any,
    mode: Any,
    url: str,
    roles: dict[str, dict[str, str]],
    examples: int,
    done: Pass,
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=examples,
              database=None, phases=[Phase.explicit, Phase.generate])  # fmt: skip
    def run(case: Any) -> None:
        if not _call(case, url, roles, f"{operation.label} [{mode.value}]", done):
            raise AssertionError("recorded")  # stop this operation's search here

    try:
        run()
    except (AssertionError, BaseExceptionGroup):
        pass  # recorded; the next operation is tried too
    except Unsatisfiable:
        pass  # an operation without any input has no negative case


@pytest.mark.parametrize("examples", [CI_EXAMPLES])
def test_the_api_holds_to_its_schema(
    served: tuple[str, dict[str, dict[str, str]]], request: pytest.FixtureRequest, examples: int
) -> None:
    url, roles = served
    examples = _examples(request, examples)
    done = fuzz(url, roles, examples, thorough=False)
    print(done.summary(examples))  # noqa: T201 - the figures of the pass, shown with -s or -rP
    assert done.failures == [], "\n\n".join(done.failures)


@pytest.mark.fuzz
def test_the_api_holds_to_its_schema_long(
    served: tuple[str, dict[str, dict[str, str]]], request: pytest.FixtureRequest
) -> None:
    url, roles = served
    examples = _examples(request, LONG_EXAMPLES)
    done = fuzz(url, roles, examples, thorough=True)
    print(done.summary(examples))  # noqa: T201
    assert done.failures == [], "\n\n".join(done.failures)


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
