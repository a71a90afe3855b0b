"""OpenTelemetry traces of a change's whole way: the HTTP request, the outbox row, the relay,
the Dramatiq message and every subscriber (handlers, projections, mails), as one trace.

The W3C ``traceparent`` of the span that wrote an event is kept in its outbox row; the relay
opens a span under it for the row's trip to Redis and puts its own ``traceparent`` in the
message; a delivery opens its span under that, and whatever it writes carries the delivery's.

Tracing is on when ``SHOP_OTEL_EXPORTER_OTLP_ENDPOINT`` is set (spans are exported over OTLP
HTTP, in batches, to ``<endpoint>/v1/traces``), and off otherwise: then no provider exists,
and every helper here returns at its first line (no span, no context, no allocation).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Mapping, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import (
    Link,
    Span,
    SpanKind,
    Tracer,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shop_kernel.settings import Settings

_PROPAGATOR = TraceContextTextMapPropagator()


class _Tracing:
    """The process's tracing, once configured (``configure_tracing``); None is off."""

    provider: TracerProvider | None = None
    tracer: Tracer | None = None


def configure_tracing(
    settings: Settings, *, role: str, exporter: SpanExporter | None = None
) -> TracerProvider | None:
    """Tracing for this process, from the settings (or to ``exporter``: tests read spans
    in memory, exported as they end). Return the provider, or None when tracing is off."""
    endpoint = settings.otel_exporter_otlp_endpoint
    if exporter is None and not endpoint:
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": f"shop-{role}"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415 - only when on
            OTLPSpanExporter,
        )

        assert endpoint is not None
        traces = f"{endpoint.rstrip('/')}/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces)))
    _Tracing.provider = provider
    _Tracing.tracer = provider.get_tracer("shop")
    return provider


def stop_tracing() -> None:
    """Export what is left and turn tracing off (a process that stops, a test that ends)."""
    provider, _Tracing.provider, _Tracing.tracer = _Tracing.provider, None, None
    if provider is not None:
        provider.shutdown()


def flush() -> None:
    """Export the spans that have ended (a worker that stops); nothing when off."""
    if _Tracing.provider is not None:
        _Tracing.provider.force_flush()


def tracer_provider() -> TracerProvider | None:
    return _Tracing.provider


def enabled() -> bool:
    return _Tracing.tracer is not None


def current_traceparent() -> str | None:
    """The ``traceparent`` of the span now running, to carry along (None: tracing is off,
    or no span runs)."""
    if _Tracing.tracer is None or not get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def _context(traceparent: str | None) -> Context | None:
    if not traceparent:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def start_span(
    name: str,
    *,
    parent: str | None,
    kind: SpanKind = SpanKind.INTERNAL,
    start_time: int | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Span | None:
    """A span under the ``parent`` traceparent (ended by the caller); None when off."""
    tracer = _Tracing.tracer
    if tracer is None:
        return None
    return tracer.start_span(
        name, context=_context(parent), kind=kind, start_time=start_time,
        attributes=dict(attributes or {}),
    )  # fmt: skip


def traceparent_of(span: Span | None) -> str | None:
    """The ``traceparent`` that makes what follows a child of ``span``."""
    if span is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=set_span_in_context(span))
    return carrier.get("traceparent")


@contextlib.contextmanager
def span(
    name: str,
    *,
    parents: Sequence[str | None] = (),
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> Generator[Span | None]:
    """A span, current while the block runs: a child of the first of ``parents`` that is
    set (or of the span now running), linked to the others (a batch's events, each of its
    own trace). Nothing at all when tracing is off."""
    tracer = _Tracing.tracer
    if tracer is None:
        yield None
        return
    contexts = [context for context in (_context(p) for p in parents) if context is not None]
    links = [Link(get_current_span(context).get_span_context()) for context in contexts[1:]]
    with tracer.start_as_current_span(
        name, context=contexts[0] if contexts else None, kind=kind, links=links,
        attributes=dict(attributes or {}),
    ) as current:  # fmt: skip
        yield current
