"""Prometheus metrics of the event backbone, beside Dramatiq's own per-actor counters.

In the worker, ``shop worker`` points ``PROMETHEUS_MULTIPROC_DIR`` at a folder before any
process starts, so every worker process writes here and one exposition server reads them all.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RELAY_BATCH_EVENTS = Histogram(
    "shop_relay_batch_events",
    "Events claimed and published by one relay batch",
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000),
)
RELAY_BATCH_SECONDS = Histogram(
    "shop_relay_batch_seconds",
    "Time to claim, enqueue and mark one relay batch",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DELIVERY_LAG_SECONDS = Histogram(
    "shop_event_delivery_lag_seconds",
    "From an event's occurrence to its subscriber's effect (projectors: the view is current)",
    ["subscriber", "kind"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
OUTBOX_BACKLOG = Gauge(
    "shop_outbox_backlog", "Committed events not yet published", multiprocess_mode="max"
)
OUTBOX_OLDEST_AGE_SECONDS = Gauge(
    "shop_outbox_oldest_age_seconds",
    "Age of the oldest unpublished event (0 when none)",
    multiprocess_mode="max",
)
DEAD_LETTERS = Gauge(
    "shop_dead_letters", "Messages waiting in dead-letter queues", multiprocess_mode="max"
)
OUTAGE_RETRIES = Counter(
    "shop_event_outage_retries",
    "Deliveries retried because a store or the mail server could not be reached",
    ["subscriber"],
)
PURGED_ROWS = Counter("shop_purged_rows", "Rows the backbone's retention deleted", ["table"])
TABLE_ROWS = Gauge(
    "shop_table_rows",
    "Rows in the backbone's tables (PostgreSQL's live-tuple estimate)",
    ["table"],
    multiprocess_mode="max",
)
DEFERRALS = Counter(
    "shop_event_deferrals",
    "Messages handed back because this worker's release does not handle them (rolling deploys)",
    ["subscriber"],
)
OUTBOX_UNROUTED = Gauge(
    "shop_outbox_unrouted",
    "Events kept back because no running release knows their type (`shop events unrouted`)",
    ["event_type"],
    multiprocess_mode="max",
)
