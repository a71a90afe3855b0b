"""Running a subscriber for the events of one message: decode, then handle once or project.

A message carries one event, or a batch of them for a subscriber that takes batches (see
:attr:`Route.batched`): the relay puts what one of its batches has for such a subscriber in
one message, so a backlog costs a transaction (or a ``bulk_write``) per batch, not per event.

A handler's delivery opens a unit of work per event and writes the event's inbox row
(subscriber, event_id) in it: an event redelivered finds its row and changes nothing. The
handler is given that unit of work and passes it to its use case, so the change, its events
and the inbox row commit together; a batch's events each commit on their own (one
transaction for a batch would hold the row locks of all its events until the last). A
subscription declared ``transaction="batch"`` (its changes lock nothing another delivery or
request waits for) takes its batch in one unit of work instead: one inbox statement, one
commit. A subscription declared with a transaction of its own gets a new unit of work
instead (its commits are its own; it takes its events one by one), while the inbox row still
commits with the delivery's.
Projectors need no inbox; they apply an event only if it is newer than what the view holds.
Each subscriber has a circuit: after an outage its messages wait for one probe at a time
(see :mod:`shop_kernel.messaging.circuit`).

When tracing is on, each event's handling (or projection) is a span under the relay's span
for it (the ``traceparents`` of its message, one per event), so a batch's events each stay in
their own trace; what a handler writes carries that span's ``traceparent`` on.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import SpanKind
from sqlalchemy import Text, Uuid, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY, insert

from shop_kernel import tracing
from shop_kernel.driver import Compiled
from shop_kernel.log import get_logger
from shop_kernel.messaging.circuit import Circuit
from shop_kernel.messaging.events import EventRegistry, IntegrationEvent, event_tag
from shop_kernel.messaging.metrics import DELIVERY_LAG_SECONDS
from shop_kernel.messaging.subscriptions import Route
from shop_kernel.messaging.tables import inbox
from shop_kernel.unit_of_work import Transactions

log = get_logger(__name__)

# The inbox rows of a message's events, in one statement: those it returns are new.
CLAIM = Compiled(
    insert(inbox)
    .from_select(
        ["subscriber", "event_id"],
        select(
            cast(bindparam("subscriber"), Text),
            func.unnest(bindparam("event_ids", type_=ARRAY(Uuid))),
        ),
    )
    .on_conflict_do_nothing()
    .returning(inbox.c.event_id)
)


class Delivery:
    def __init__(
        self,
        registry: EventRegistry,
        transactions: Callable[[], Transactions],
        build: Callable[[type[Any]], Any],
    ) -> None:
        self._registry = registry
        self._transactions = transactions
        self._build = build
        self._circuits: dict[str, Circuit] = {}

    async def deliver(
        self, route: Route, payloads: Sequence[str], traceparents: Sequence[str | None] = ()
    ) -> int:
        """Handle (or project) the events of one message; return how many this subscriber
        had not handled before (a projector's: all of them). ``traceparents``, when tracing,
        are the events' own, in the same order."""
        events = [self._registry.decode(payload) for payload in payloads]
        parents = dict(zip((event.event_id for event in events), traceparents, strict=False))
        reactor = self._build(route.subscription.reactor)
        circuit = self._circuits.get(route.subscriber)
        if circuit is None:
            circuit = self._circuits[route.subscriber] = Circuit(route.subscriber)
        circuit.enter()
        try:
            if route.subscription.kind == "projector":
                started = time.time_ns()
                await reactor(events)
                _projected_spans(route, events, parents, started)
                applied = events
            else:
                applied = await self._handle_once(route, events, reactor, parents)
        except BaseException as failure:
            circuit.failed(failure)
            raise
        circuit.succeeded()
        now = datetime.now(UTC)
        lag = DELIVERY_LAG_SECONDS.labels(route.subscriber, route.subscription.kind)
        for event in applied:
            lag.observe((now - event.occurred_at).total_seconds())
        return len(applied)

    async def _handle_once(
        self,
        route: Route,
        events: Sequence[IntegrationEvent],
        handler: Any,
        parents: dict[uuid.UUID, str | None],
    ) -> list[IntegrationEvent]:
        transactions = self._transactions()
        unique = list({event.event_id: event for event in events}.values())
        if route.subscription.transaction == "batch":
            return await self._in_one_transaction(route, unique, handler, parents, transactions)
        # A transaction per event: a handler's use case locks what it changes (a product's
        # stock), and a batch's one transaction would hold every lock of every event until the
        # last, so concurrent batches on the same rows would wait for each other whole.
        fresh: list[IntegrationEvent] = []
        for event in unique:
            fresh += await self._in_one_transaction(route, [event], handler, parents, transactions)
        return fresh

    async def _in_one_transaction(
        self,
        route: Route,
        events: Sequence[IntegrationEvent],
        handler: Any,
        parents: dict[uuid.UUID, str | None],
        transactions: Transactions,
    ) -> list[IntegrationEvent]:
        """The events' inbox rows, in one statement, and every new event's change, in one
        unit of work: all of it commits, or none of it (a failed batch goes on one event at a
        time, see the platform's deliverer). Return the new events."""
        own = route.subscription.transaction == "own"
        async with transactions.unit_of_work() as uow:
            claimed = await CLAIM.rows(
                await uow.driver(),
                subscriber=route.subscriber,
                event_ids=[event.event_id for event in events],
            )
            new: set[uuid.UUID] = {row["event_id"] for row in claimed}
            for event in events:
                if event.event_id not in new:
                    log.info(
                        "event already handled",
                        subscriber=route.subscriber,
                        event_id=str(event.event_id),
                    )
            fresh = [event for event in events if event.event_id in new]
            for event in fresh:
                with tracing.span(
                    f"handle {route.subscriber}", parents=[parents.get(event.event_id)],
                    kind=SpanKind.CONSUMER, attributes=_attributes(route, event),
                ):  # fmt: skip
                    await handler(event, transactions.unit_of_work() if own else uow)
            await uow.commit()
        return fresh


def _attributes(route: Route, event: IntegrationEvent) -> dict[str, str]:
    return {
        "shop.subscriber": route.subscriber,
        "shop.event_type": event_tag(type(event)),
        "shop.event_id": str(event.event_id),
    }


def _projected_spans(
    route: Route,
    events: Sequence[IntegrationEvent],
    parents: dict[uuid.UUID, str | None],
    started: int,
) -> None:
    """A span per projected event, each in its own trace, over the batch's one write."""
    if not tracing.enabled():
        return
    for event in events:
        span = tracing.start_span(
            f"project {route.subscriber}", parent=parents.get(event.event_id),
            kind=SpanKind.CONSUMER, start_time=started, attributes=_attributes(route, event),
        )  # fmt: skip
        if span is not None:
            span.end()
