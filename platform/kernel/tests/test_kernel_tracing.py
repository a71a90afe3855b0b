"""Tracing: off unless an OTLP endpoint is set (then nothing is made), and on, a traceparent
carried along makes the next span a child of the one that wrote it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shop_kernel import tracing
from shop_kernel.settings import Settings, SettingsError


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    spans = InMemorySpanExporter()
    tracing.configure_tracing(Settings(), role="test", exporter=spans)
    try:
        yield spans
    finally:
        tracing.stop_tracing()


def test_without_an_endpoint_tracing_is_off_and_makes_nothing() -> None:
    assert tracing.configure_tracing(Settings(), role="test") is None
    assert not tracing.enabled()
    assert tracing.current_traceparent() is None
    assert tracing.start_span("relay", parent=None) is None
    with tracing.span("handle") as span:
        assert span is None
        assert tracing.current_traceparent() is None


def test_an_endpoint_turns_tracing_on_with_an_otlp_exporter() -> None:
    settings = Settings(otel_exporter_otlp_endpoint="http://127.0.0.1:4318")
    provider = tracing.configure_tracing(settings, role="worker")
    try:
        assert provider is not None
        assert tracing.enabled()
        assert provider.resource.attributes["service.name"] == "shop-worker"
    finally:
        tracing.stop_tracing()
    assert not tracing.enabled()


@pytest.mark.parametrize(
    "endpoint", ["collector:4318", "ftp://collector", "http://", "http://c:4318/?x=1"]
)
def test_an_endpoint_that_is_not_an_http_url_is_refused_at_start(endpoint: str) -> None:
    with pytest.raises(SettingsError, match="SHOP_OTEL_EXPORTER_OTLP_ENDPOINT"):
        Settings(otel_exporter_otlp_endpoint=endpoint)


def test_a_carried_traceparent_makes_the_next_span_a_child_of_the_writer(
    exporter: InMemorySpanExporter,
) -> None:
    with tracing.span("request") as request:
        assert request is not None
        carried = tracing.current_traceparent()
    assert carried is not None
    relay = tracing.start_span("relay", parent=carried)
    assert relay is not None
    handed_on = tracing.traceparent_of(relay)
    relay.end()
    with tracing.span("handle", parents=[handed_on]):
        pass
    spans = {span.name: span for span in exporter.get_finished_spans()}
    trace_ids = {span.context.trace_id for span in spans.values() if span.context is not None}
    assert len(trace_ids) == 1
    assert spans["relay"].parent is not None
    assert spans["relay"].parent.span_id == request.get_span_context().span_id
    assert spans["handle"].parent is not None
    assert spans["handle"].parent.span_id == relay.get_span_context().span_id


def test_a_batch_span_is_a_child_of_its_first_event_and_linked_to_the_others(
    exporter: InMemorySpanExporter,
) -> None:
    writers = [tracing.start_span(f"write {n}", parent=None) for n in range(3)]
    parents = [tracing.traceparent_of(writer) for writer in writers]
    for writer in writers:
        assert writer is not None
        writer.end()
    with tracing.span("batch", parents=[None, *parents]) as batch:
        assert batch is not None
    [done] = [span for span in exporter.get_finished_spans() if span.name == "batch"]
    first, *others = [writer.get_span_context() for writer in writers if writer is not None]
    assert done.parent is not None
    assert done.parent.span_id == first.span_id
    assert [link.context.span_id for link in done.links] == [o.span_id for o in others]
