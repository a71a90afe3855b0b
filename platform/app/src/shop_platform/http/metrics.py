"""The API's request metrics: Litestar's Prometheus middleware, its label sets looked up once.

Litestar's middleware resolves every metric's labels anew on each request (a request object,
label dicts, four ``labels()`` lookups under a lock). Here each route's labelled children are
kept after their first request, so a request only counts, observes and moves the gauge. The
metrics, their names and their labels are Litestar's own.
"""

from __future__ import annotations

import time
from typing import Any, cast

from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ASGIApp, Message, Receive, Scope, Send


class RequestMetrics(PrometheusMiddleware):
    def __init__(self, app: ASGIApp, config: PrometheusConfig) -> None:
        super().__init__(app, config)
        self._in_progress: dict[tuple[str, str], Any] = {}
        self._finished: dict[tuple[str, str, int], tuple[Any, Any, Any | None]] = {}

    def _labels(self, method: str, path: str, status: int) -> dict[str, str | int | float]:
        # In the order and of the names Litestar declares its metrics with.
        return {"method": method, "path": path, "status_code": status,
                "app_name": self._config.app_name}  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        view = cast("dict[str, Any]", scope)
        method = str(view.get("method") or view["type"])
        path = str(view["path_template"] if self._config.group_path else view["path"])
        key = (method, path)
        in_progress = self._in_progress.get(key)
        if in_progress is None:
            labels = self._labels(method, path, 200)
            gauge = self.requests_in_progress(labels)
            in_progress = self._in_progress[key] = gauge.labels(*labels.values())
        started = time.perf_counter()
        status = 200
        duration = 0.0

        async def measured(message: Message) -> None:
            nonlocal status, duration
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                duration = time.perf_counter() - started
            await send(message)

        in_progress.inc()
        try:
            await self.app(scope, receive, measured)
        finally:
            in_progress.dec()
            count, elapsed, errors = self._children(method, path, status)
            if errors is not None:
                errors.inc()
            count.inc()
            elapsed.observe(duration)

    def _children(self, method: str, path: str, status: int) -> tuple[Any, Any, Any | None]:
        key = (method, path, status)
        children = self._finished.get(key)
        if children is None:
            labels = self._labels(method, path, status)
            values = list(labels.values())
            errors = None
            if status >= HTTP_500_INTERNAL_SERVER_ERROR:
                errors = self.requests_error_count(labels).labels(*values)
            children = self._finished[key] = (
                self.request_count(labels).labels(*values),
                self.request_time(labels).labels(*values),
                errors,
            )
        return children
