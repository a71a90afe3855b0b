"""One checkout is one trace: the request, every relay trip, every subscriber, the projection
and the email, read from an in-memory span exporter.

The API and the worker run in this process against real PostgreSQL, Redis, the Mongo-wire
server and an SMTP server; the traceparent travels in the outbox rows and the messages'
options exactly as between processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shop_devkit.app_plugin import eventually, new_admin, new_customer, new_product, placed_order
from shop_devkit.mail import MailServer
from shop_kernel import tracing
from shop_kernel.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def shop_settings(
    shop_settings: Settings, exporter: InMemorySpanExporter, mail_server: MailServer
) -> Iterator[Settings]:
    # Before the app and the worker are built: both find tracing on.
    settings = shop_settings.with_overrides(smtp_url=mail_server.url)
    tracing.configure_tracing(settings, role="test", exporter=exporter)
    try:
        yield settings
    finally:
        tracing.stop_tracing()


@pytest.fixture
def client(shop_server: httpx.AsyncClient, shop_worker: None) -> httpx.AsyncClient:
    return shop_server


# Each hop of a checkout after the confirm request, in the order they happen: (span name,
# the event type it carries, the hop that caused it: an index here, or None for the request).
CHECKOUT_HOPS: list[tuple[str, str, int | None]] = [
    ("relay orders.OrderPlaced", "orders.OrderPlaced", None),
    ("handle catalog.ReserveStock", "orders.OrderPlaced", 0),
    ("relay catalog.StockReserved", "catalog.StockReserved", 1),
    ("handle orders.ConfirmOrder", "catalog.StockReserved", 2),
    ("relay orders.OrderConfirmed", "orders.OrderConfirmed", 3),
    ("project orders.OrderViewProjector", "orders.OrderConfirmed", 4),
    ("handle notifications.OrderMail", "orders.OrderConfirmed", 4),
]


def _hop(spans: Sequence[ReadableSpan], name: str, event_type: str) -> ReadableSpan | None:
    return next(
        (
            span for span in spans
            if span.name.startswith(name)
            and str((span.attributes or {}).get("shop.event_type", "")).startswith(event_type)
        ),
        None,
    )  # fmt: skip


async def test_a_checkout_is_one_trace_from_the_request_to_the_email(
    client: httpx.AsyncClient, shop_settings: Settings, exporter: InMemorySpanExporter
) -> None:
    admin = await new_admin(client, shop_settings)
    sku = await new_product(client, admin, "TRC")
    customer = await new_customer(client)
    order_id = await placed_order(client, customer, sku)

    def request_span() -> ReadableSpan:
        return next(
            span for span in exporter.get_finished_spans()
            if span.kind is SpanKind.SERVER and span.name.endswith("/confirm")
        )  # fmt: skip

    def in_trace() -> list[ReadableSpan]:
        context = request_span().context
        assert context is not None
        return [
            span for span in exporter.get_finished_spans()
            if span.context is not None and span.context.trace_id == context.trace_id
        ]  # fmt: skip

    async def every_hop_traced() -> bool:
        spans = in_trace()
        return all(_hop(spans, name, event) is not None for name, event, _ in CHECKOUT_HOPS)

    await eventually(every_hop_traced, "every hop of the checkout in the request's trace", 60)

    spans = in_trace()
    hops = [_hop(spans, name, event) for name, event, _ in CHECKOUT_HOPS]
    # Each hop is a child of the one that caused it: the relay's trip of an event under the
    # span that wrote it (the request's, or a subscriber's), a subscriber under the relay's
    # trip of its event.
    for hop, (name, _, cause) in zip(hops, CHECKOUT_HOPS, strict=True):
        assert hop is not None
        assert hop.parent is not None, name
        caused_by = request_span() if cause is None else hops[cause]
        assert caused_by is not None
        assert caused_by.context is not None
        assert hop.parent.span_id == caused_by.context.span_id, (name, caused_by.name)
    # The order's confirmation reached its view and its email in this same trace.
    mail = _hop(spans, "handle notifications.OrderMail", "orders.OrderConfirmed")
    assert mail is not None
    assert (mail.attributes or {}).get("shop.subscriber") == "notifications.OrderMail"
    shown = await client.get(f"/orders/{order_id}", headers=customer)
    assert shown.json()["status"] == "confirmed"
