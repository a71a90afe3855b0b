"""Structured logging: one JSON object per line, with the request id on every line of a request.

The standard library's loggers (uvicorn, alembic, dramatiq) are routed through the same
processors so an operator reads one format.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from shop_kernel.settings import Settings

REQUEST_ID = "request_id"


def configure_logging(settings: Settings, *, process: str) -> None:
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_process(process),
    ]
    renderer: Processor
    if settings.log_format == "json":
        renderer = structlog.processors.JSONRenderer()
        # Frames without their local variables: those hold payloads and personal data.
        shared.append(
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            )
        )
    else:
        renderer = structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[
            # First: a line below the level costs a level check, not the whole chain.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a later configure_logging (tests, CLI commands) must reach every logger.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq", "alembic"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # DEBUG and INFO are the service's own: the drivers' lines at those levels carry whole
    # statements with their parameters, documents, replies and mails (a person's address
    # among them), so the drivers say only warnings and errors whatever the level.
    for name in _DRIVERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    # Dramatiq's worker threads log every failed message with its whole payload; the
    # backbone's retry middleware logs each failure itself, naming the event, not its data.
    logging.getLogger("dramatiq.worker.WorkerThread").setLevel(logging.CRITICAL)
    # Our own access line carries the request id; uvicorn's would repeat it without.
    logging.getLogger("uvicorn.access").disabled = True


_DRIVERS = (
    "pymongo", "redis", "sqlalchemy", "psycopg", "aiosmtplib", "httpx", "httpcore", "asyncio",
)  # fmt: skip


def _add_process(process: str) -> Processor:
    """The process's id and role on every line (a worker program forks: the id is read at
    each line, which costs less than finding the caller's frame)."""

    def add(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        event.setdefault("process", os.getpid())
        event.setdefault("role", process)
        return event

    return add


def bind_request_id(request_id: str) -> None:
    structlog.contextvars.bind_contextvars(**{REQUEST_ID: request_id})


def current_request_id() -> str | None:
    value = structlog.contextvars.get_contextvars().get(REQUEST_ID)
    return value if isinstance(value, str) else None


def clear_request_context() -> None:
    structlog.contextvars.clear_contextvars()


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
