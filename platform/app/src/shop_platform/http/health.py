"""GET /health/live and GET /health/ready."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec

from shop_platform.health import Readiness
from shop_platform.http.problems import problem

_NOT_READY = ResponseSpec(
    data_container=dict[str, Any],
    description="A dependency is down; the problem names the failing ones",
    media_type="application/problem+json",
)


class Liveness(msgspec.Struct):
    status: str


class ReadinessReport(msgspec.Struct):
    status: str
    checks: dict[str, str]


class HealthController(Controller):
    path = "/health"
    tags = ["operations"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get("/live", summary="The process is up and serving requests", cache=False)
    async def live(self) -> Liveness:
        return Liveness(status="ok")

    @get(
        "/ready",
        summary="This process can serve: PostgreSQL and Redis answer, every schema is migrated",
        description=(
            "200 when PostgreSQL and Redis answer and every schema is at its latest migration, "
            "else 503 naming the failing ones. `checks` also reports MongoDB (the read views) "
            "and the event backlog (`outbox`), which fail nothing: with the read store down "
            "the reads answer 503 while commands go on, and a backlog is the worker's matter."
        ),
        responses={503: _NOT_READY},
    )
    async def ready(
        self, request: Request[Any, Any, Any], readiness: NamedDependency[Readiness]
    ) -> Response[ReadinessReport]:
        checks = await readiness.run()
        failing = readiness.failing(checks)
        if failing:
            return problem(
                request,
                503,
                code="not-ready",
                title="Not ready",
                detail=f"unavailable: {', '.join(failing)}",
                extra={"failing": failing, "checks": checks},
            )
        return Response(ReadinessReport(status="ok", checks=checks))
