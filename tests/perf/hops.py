"""Where a checkout's time goes, hop by hop, read from its trace.

Each checkout traced by the service (SHOP_OTEL_EXPORTER_OTLP_ENDPOINT, collected by
shop_devkit.traces) is one trace: the confirm request, then for each event the relay's trip
(claimed -> enqueued) and its subscriber (consumed -> done). The gaps between them are the
waits: from the request's end to the relay's claim, from the enqueue to the consumer taking
the message. All processes run on this machine, so their clocks agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shop_devkit.traces import CollectedSpan

# The checkout's way after the confirm request: (what, span name prefix, the event type it
# carries), in order. The view is projected twice in the trace (pending, then confirmed).
CHAIN = [
    ("relay OrderPlaced", "relay orders.OrderPlaced", "orders.OrderPlaced"),
    ("catalog ReserveStock", "handle catalog.ReserveStock", "orders.OrderPlaced"),
    ("relay StockReserved", "relay catalog.StockReserved", "catalog.StockReserved"),
    ("orders ConfirmOrder", "handle orders.ConfirmOrder", "catalog.StockReserved"),
    ("relay OrderConfirmed", "relay orders.OrderConfirmed", "orders.OrderConfirmed"),
    ("order view projection", "project orders.OrderViewProjector", "orders.OrderConfirmed"),
]


def checkout_hops(spans: Sequence[CollectedSpan]) -> dict[str, Any]:
    """Per hop, its p50/p90/p99 in ms over every checkout whose trace is complete; with the
    number of checkouts traced and of those whose chain was complete."""
    by_trace: dict[str, list[CollectedSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(span)
    durations: dict[str, list[float]] = {}
    traced = complete = 0
    for trace in by_trace.values():
        request = next((s for s in trace if s.name.endswith("/confirm")), None)
        if request is None:
            continue
        traced += 1
        chain = [_find(trace, name, event) for _, name, event in CHAIN]
        if any(span is None for span in chain):
            continue
        complete += 1
        segments = [("confirm request", request.start_ns, request.end_ns)]
        previous = request
        for (what, _, _), span in zip(CHAIN, chain, strict=True):
            assert span is not None
            waiting = "claimed" if what.startswith("relay") else "consumed"
            segments.append((f"-> {waiting} ({what})", previous.end_ns, span.start_ns))
            segments.append((what, span.start_ns, span.end_ns))
            previous = span
        segments.append(("confirm answered -> projected", request.end_ns, previous.end_ns))
        for name, start, end in segments:
            durations.setdefault(name, []).append((end - start) / 1e6)
    return {
        "checkouts_traced": traced,
        "complete": complete,
        "hops": [
            {"hop": name, "count": len(values), **_percentiles(values)}
            for name, values in durations.items()
        ],
    }


def _find(trace: Sequence[CollectedSpan], name: str, event_type: str) -> CollectedSpan | None:
    return next(
        (
            span for span in trace
            if span.name.startswith(name)
            and str(span.attributes.get("shop.event_type", "")).startswith(event_type)
        ),
        None,
    )  # fmt: skip


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 2)

    return {"p50_ms": at(0.5), "p90_ms": at(0.9), "p99_ms": at(0.99)}
