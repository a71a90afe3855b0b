"""Running a subscriber for one delivered event: decode, then handle once or project.

A handler's delivery opens a unit of work and writes the inbox row (subscriber, event_id) in
it: a redelivered event finds its row and changes nothing. The handler is given that unit of
work and passes it to its use case, so the change, its events and the inbox row commit
together; a subscription declared with a transaction of its own gets a new unit of work
instead (its commits are its own), while the inbox row still commits with the delivery's.
Projectors need no inbox; they apply an event only
if it is newer than what the view holds. Each subscriber has a circuit: after an outage its
messages wait for one probe at a time (see :mod:`shop_kernel.messaging.circuit`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam
from sqlalchemy.dialects.postgresql import insert

from shop_kernel.log import get_logger
from shop_kernel.messaging.circuit import Circuit
from shop_kernel.messaging.events import EventRegistry, IntegrationEvent
from shop_kernel.messaging.metrics import DELIVERY_LAG_SECONDS
from shop_kernel.messaging.subscriptions import Route
from shop_kernel.messaging.tables import inbox
from shop_kernel.unit_of_work import Transactions

log = get_logger(__name__)

# Built once: a statement object memoises its cache key, so each delivery only binds values.
CLAIM = (
    insert(inbox)
    .values(subscriber=bindparam("subscriber"), event_id=bindparam("event_id"))
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

    async def deliver(self, route: Route, payload: str) -> bool:
        """Return False when the event had already been handled by this subscriber."""
        event = self._registry.decode(payload)
        reactor = self._build(route.subscription.reactor)
        circuit = self._circuits.get(route.subscriber)
        if circuit is None:
            circuit = self._circuits[route.subscriber] = Circuit(route.subscriber)
        circuit.enter()
        try:
            if route.subscription.kind == "projector":
                await reactor(event)
                applied = True
            else:
                applied = await self._handle_once(route, event, reactor)
        except BaseException as failure:
            circuit.failed(failure)
            raise
        circuit.succeeded()
        if applied:
            lag = (datetime.now(UTC) - event.occurred_at).total_seconds()
            DELIVERY_LAG_SECONDS.labels(route.subscriber, route.subscription.kind).observe(lag)
        return applied

    async def _handle_once(self, route: Route, event: IntegrationEvent, handler: Any) -> bool:
        transactions = self._transactions()
        async with transactions.unit_of_work() as uow:
            claimed = await uow.connection.execute(
                CLAIM, {"subscriber": route.subscriber, "event_id": event.event_id}
            )
            if claimed.first() is None:
                log.info(
                    "event already handled",
                    subscriber=route.subscriber,
                    event_id=str(event.event_id),
                )
                return False
            own = route.subscription.transaction == "own"
            await handler(event, transactions.unit_of_work() if own else uow)
            await uow.commit()
        return True
