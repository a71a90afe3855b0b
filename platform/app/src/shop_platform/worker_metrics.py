"""The worker program's Prometheus endpoint: one per program, on a port of its own.

Dramatiq's own exposition server binds one fixed port, so a second worker program on the
same host lost its metrics to "Address already in use". This one binds the configured port
or, when another program holds it, the next free one above it, and logs where it listens.
Every process of the program writes its samples to the program's multiprocess folder; the
server reads them all.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from dramatiq.middleware.prometheus import Prometheus

from shop_kernel.log import configure_logging, get_logger
from shop_platform.contexts import settings_from_env

log = get_logger(__name__)

METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# How many ports above the configured one a program may take when that one is in use.
PORTS_TRIED = 64


class WorkerPrometheus(Prometheus):
    """Dramatiq's per-actor metrics, served by :func:`serve_worker_metrics`."""

    @property
    def forks(self) -> list[Callable[[], Literal[0]]]:
        return [serve_worker_metrics]


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest  # noqa: PLC0415
        from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

        if self.path.split("?", 1)[0] != "/metrics":
            self.send_error(404)
            return
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        body = generate_latest(registry)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return None  # scrapes every few seconds are not news


def bind_metrics_server(host: str, port: int, tries: int = PORTS_TRIED) -> ThreadingHTTPServer:
    """A server on ``port``, or on the first free one of the ``tries`` ports above it."""
    for candidate in range(port, min(port + tries, 65536)):
        try:
            return ThreadingHTTPServer((host, candidate), _Metrics)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, f"ports {port}..{port + tries - 1} on {host} are all in use")


def serve_worker_metrics() -> Literal[0]:
    """Dramatiq runs this in a process of its own beside the worker processes."""
    settings = settings_from_env()
    configure_logging(settings, process="worker")
    server = bind_metrics_server(settings.worker_metrics_host, settings.worker_metrics_port)
    host, port = server.server_address[:2]
    if port != settings.worker_metrics_port:
        log.warning(
            "worker metrics port in use by another program; serving on the next free one",
            configured=settings.worker_metrics_port, port=port,
        )  # fmt: skip
    log.info(
        "worker metrics served",
        url=f"http://{host}:{port}/metrics", folder=os.environ.get(METRICS_DIR),
    )  # fmt: skip
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
