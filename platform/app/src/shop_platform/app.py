"""The Litestar application factory: every context's routes in one app, built from settings."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

import punq
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin  # serves the schema dict it caches
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsPlugin
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from redis.asyncio import Redis

from shop_kernel import tracing
from shop_kernel.auth import Authenticator
from shop_kernel.di import resolved
from shop_kernel.idempotency import unit_of_work
from shop_kernel.log import configure_logging, get_logger
from shop_kernel.messaging.registry import stay_registered
from shop_kernel.settings import Settings
from shop_platform.admins import ensure_admin
from shop_platform.backbone import Backbone
from shop_platform.container import build_container
from shop_platform.contexts import CONTEXTS, migration_targets, settings_from_env
from shop_platform.health import Readiness, refresh_backbone_gauges, store_checks
from shop_platform.http import auth
from shop_platform.http.body_limit import body_limit_middleware
from shop_platform.http.content_type import require_json
from shop_platform.http.health import HealthController
from shop_platform.http.metrics import RequestMetrics
from shop_platform.http.openapi import Access, complete
from shop_platform.http.options import answer_options
from shop_platform.http.problems import EXCEPTION_HANDLERS  # pyright: ignore[reportUnknownVariableType]
from shop_platform.http.rate_limits import rate_limit_middleware
from shop_platform.http.request_context import request_context_middleware
from shop_platform.resources import Resources, open_resources

OPS_PATHS = ["/health", "/metrics", "/schema"]
# Open to anyone: the ops paths (and all below them).
# Open to anyone besides: the routes the contexts declare public (signing in, registering).
PUBLIC_ROUTES = [route for context in CONTEXTS for route in context.public_routes]
# Readable by anyone; a token, when sent, still counts (admins see inactive products).
OPEN_READS = ["/products"]

log = get_logger(__name__)


def rate_limits(settings: Settings) -> dict[tuple[str, str], int]:
    """Every context's per-address limits: {(method, path): requests a minute}."""
    return {route: n for context in CONTEXTS for route, n in context.rate_limits(settings).items()}


def create_app(settings: Settings | None = None, *, configure_logs: bool = True) -> Litestar:
    settings = settings or settings_from_env()
    if configure_logs:
        configure_logging(settings, process="api")
    targets = migration_targets()
    backbone = Backbone.of(CONTEXTS)
    traced = _tracing_middleware(settings)

    @asynccontextmanager
    async def stores(app: Litestar) -> AsyncGenerator[None]:
        async with open_resources(settings, role="api", create_indexes=True) as resources:
            container = build_container(settings, resources)
            app.state.container = container
            log.info("contexts composed", contexts=[context.name for context in CONTEXTS])
            if settings.bootstrap_admin_email and settings.bootstrap_admin_password:
                admin = await ensure_admin(
                    container, settings.bootstrap_admin_email, settings.bootstrap_admin_password
                )
                log.info("bootstrap admin present", user_id=str(admin.user_id))
            app.state.readiness = Readiness(
                store_checks(resources, targets, outbox_max_age=settings.outbox_max_age),
                timeout=settings.health_timeout,
            )
            stop = asyncio.Event()
            gauges = asyncio.create_task(_keep_gauges_current(resources, stop))
            # The API registers its release too: a relay routes its events to every
            # subscriber of this release even before a worker of it runs.
            registration = backbone.registration(settings, resources.engine, role="api")
            registered = asyncio.create_task(stay_registered(registration, stop))
            try:
                yield
            finally:
                # Let what is in flight finish: cancelling it mid-query can leave its
                # connection checked out while the engine is disposed.
                stop.set()
                for task in (gauges, registered):
                    try:
                        await asyncio.wait_for(asyncio.shield(task), timeout=10)
                    except TimeoutError:
                        task.cancel()

    def provide_readiness(state: State) -> Readiness:
        readiness: Readiness = state.readiness
        return readiness

    # The container exists only once the lifespan has opened the stores: look it up late.
    def authenticator() -> Authenticator | None:
        try:
            return resolved(app.state.container, Authenticator)
        except punq.MissingDependencyError:
            return None  # no context that issues tokens is installed: every token is refused

    def redis() -> Redis:
        return resolved(app.state.container, Redis)

    def document(app: Litestar) -> None:
        # Litestar serves the dict its OpenAPI plugin caches; completing it once is enough.
        schema = app.plugins.get(OpenAPIPlugin).provide_openapi_schema()
        complete(app, schema, Access(
            public=lambda method, path: path.startswith(tuple(OPS_PATHS))
            or (method, path) in PUBLIC_ROUTES,
            open_read=lambda method, path: method == "GET" and path.startswith(tuple(OPEN_READS)),
            rate_limited=rate_limits(settings),
        ))  # fmt: skip

    app = Litestar(
        on_startup=[document],
        route_handlers=[
            HealthController,
            PrometheusController,
            *(handler for context in CONTEXTS for handler in context.route_handlers),
        ],
        lifespan=[stores],
        # Every command's use case is handed the request's unit of work (``uow``).
        dependencies={
            "readiness": Provide(provide_readiness, sync_to_thread=False),
            "uow": unit_of_work,
        },
        middleware=[
            *traced,  # outermost: the request's span is current while everything else runs
            auth.bearer_auth(
                authenticator,
                public_prefixes=OPS_PATHS,
                public_routes=PUBLIC_ROUTES,
                open_reads=OPEN_READS,
            ),
            PrometheusConfig(
                app_name="shop", group_path=True, exclude=OPS_PATHS, middleware_class=RequestMetrics
            ).middleware,
            answer_options,  # before any guard: Allow names every method of the path
            *rate_limit_middleware(rate_limits(settings), redis=redis),
        ],
        plugins=[ProblemDetailsPlugin(ProblemDetailsConfig())],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.request_max_body_size,
        before_request=require_json,
        logging_config=None,  # configure_logging owns the log format
        openapi_config=OpenAPIConfig(
            title="Shop",
            version="1.0.0",
            description="Storefront API: users, catalog, orders and notifications.",
            path="/schema",
            components=[auth.COMPONENTS],
            security=auth.SECURITY,
            render_plugins=[
                SwaggerRenderPlugin(path="/"),
                JsonRenderPlugin(path="/openapi.json"),
                YamlRenderPlugin(path="/openapi.yaml"),
            ],
        ),
    )
    # Outermost, so unmatched routes (404/405) get a request id and an access line too; the
    # body limit next, so that no work starts on a body over it.
    app.asgi_handler = request_context_middleware(
        body_limit_middleware(app.asgi_handler, settings.request_max_body_size)
    )
    return app


def _tracing_middleware(settings: Settings) -> list[DefineMiddleware]:
    """A server span per request (Litestar's OpenTelemetry middleware) when tracing is on:
    configured for this process now, unless it already is (a test's in-memory exporter).
    Nothing when it is off. The ops paths are not traced."""
    provider = tracing.tracer_provider() or tracing.configure_tracing(settings, role="api")
    if provider is None:
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig  # noqa: PLC0415 - only when on

    # One span per request: the ASGI instrumentation's receive and send spans say nothing
    # the request's own does not, and would triple the spans.
    config = OpenTelemetryConfig(
        tracer_provider=provider, exclude=[f"^{path}" for path in OPS_PATHS],
        exclude_spans=["receive", "send"],
    )  # fmt: skip
    return [config.middleware]


async def _keep_gauges_current(
    resources: Resources, stop: asyncio.Event, every: float = 5.0
) -> None:
    while not stop.is_set():
        try:
            await refresh_backbone_gauges(resources)
        except Exception as exc:  # noqa: BLE001 - a store outage shows in readiness; keep trying
            log.warning("backbone gauges not refreshed", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
