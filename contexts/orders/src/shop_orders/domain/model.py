"""An order from cart to outcome: lines priced when added, then the stock saga decides."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Literal

from shop_kernel.domain import (
    AggregateRoot,
    BusinessRuleViolated,
    Conflict,
    DomainEvent,
    InvalidField,
    Money,
    NotFound,
)

OrderStatus = Literal["draft", "pending", "confirmed", "rejected", "cancelled"]
MAX_LINES = 100
MAX_QUANTITY = 1000


class OrderNotDraft(Conflict):
    code: ClassVar[str] = "order-not-draft"

    def __init__(self, status: str) -> None:
        super().__init__(
            f"only a draft order can change; this one is {status}", order_status=status
        )


class EmptyOrder(Conflict):
    code: ClassVar[str] = "empty-order"

    def __init__(self) -> None:
        super().__init__("an order without lines cannot be confirmed")


class CannotCancel(Conflict):
    code: ClassVar[str] = "cannot-cancel"

    def __init__(self, status: str) -> None:
        super().__init__(f"a {status} order cannot be cancelled", order_status=status)


class TooManyLines(BusinessRuleViolated):
    code: ClassVar[str] = "too-many-lines"

    def __init__(self) -> None:
        super().__init__(f"an order has at most {MAX_LINES} distinct lines")


class OrderNotFound(NotFound):
    code: ClassVar[str] = "order-not-found"

    def __init__(self, order_id: uuid.UUID | str) -> None:
        super().__init__(f"no order {order_id}", order_id=str(order_id))


class LineNotFound(NotFound):
    code: ClassVar[str] = "line-not-found"

    def __init__(self, sku: str) -> None:
        super().__init__(f"the order has no line {sku}", sku=sku)


@dataclass(frozen=True)
class OrderLine:
    sku: str
    name: str
    unit_price: Money
    quantity: int

    @property
    def line_total(self) -> Money:
        return self.unit_price.times(self.quantity)


@dataclass(frozen=True, kw_only=True)
class Started(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class LinesChanged(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class Placed(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class Confirmed(DomainEvent):
    pass


@dataclass(frozen=True, kw_only=True)
class Rejected(DomainEvent):
    short_skus: tuple[str, ...]  # empty when the stock never answered in time


# The rejection reason of an order whose stock never answered in time.
TIMED_OUT = "timeout"


@dataclass(frozen=True, kw_only=True)
class Cancelled(DomainEvent):
    previous_status: OrderStatus


def _now() -> datetime:
    return datetime.now(UTC)


def _quantity(quantity: int, field_name: str = "quantity") -> int:
    if not 1 <= quantity <= MAX_QUANTITY:
        raise InvalidField(field_name, f"a line's quantity is 1..{MAX_QUANTITY}")
    return quantity


@dataclass(kw_only=True, eq=False)
class Order(AggregateRoot):
    id: uuid.UUID
    customer_id: uuid.UUID
    currency: str
    status: OrderStatus = "draft"
    lines: list[OrderLine] = field(default_factory=list[OrderLine])  # in the order added
    rejection_reason: str | None = None
    created_at: datetime = field(default_factory=_now)
    updated_at: datetime = field(default_factory=_now)

    def visible_to(self, user_id: uuid.UUID, *, is_admin: bool = False) -> bool:
        """Whether the caller may know this order exists: its customer, or an admin."""
        return is_admin or self.customer_id == user_id

    @classmethod
    def start(cls, customer_id: uuid.UUID, currency: str) -> Order:
        order = cls(id=uuid.uuid4(), customer_id=customer_id, currency=currency)
        order.record(Started())
        return order

    @property
    def total(self) -> Money:
        # The lines' amounts summed, then made Money once (which holds it to 64 bits).
        return Money(
            sum(line.unit_price.amount * line.quantity for line in self.lines), self.currency
        )

    def line(self, sku: str) -> OrderLine:
        for line in self.lines:
            if line.sku == sku:
                return line
        raise LineNotFound(sku)

    def add_item(self, sku: str, name: str, unit_price: Money, quantity: int) -> None:
        """Add a line, or increase it (keeping the price it was first added at)."""
        self._must_be_draft()
        _quantity(quantity)
        if unit_price.currency != self.currency:
            raise InvalidField("sku", f"{sku} is not priced in {self.currency}")
        current = next((line for line in self.lines if line.sku == sku), None)
        if current is None:
            if len(self.lines) >= MAX_LINES:
                raise TooManyLines
            line = OrderLine(sku, name, unit_price, quantity)
        else:
            line = OrderLine(sku, current.name, current.unit_price, current.quantity + quantity)
            _quantity(line.quantity)
        self._replace_line(line)

    def set_quantity(self, sku: str, quantity: int) -> None:
        self._must_be_draft()
        current = self.line(sku)
        self._replace_line(OrderLine(sku, current.name, current.unit_price, _quantity(quantity)))

    def remove_item(self, sku: str) -> None:
        self._must_be_draft()
        self.lines.remove(self.line(sku))
        self._touch()
        self._lines_changed()

    def confirm(self) -> None:
        self._must_be_draft()
        if not self.lines:
            raise EmptyOrder
        self.status = "pending"
        self._touch()
        self.record(Placed())

    def cancel(self) -> None:
        if self.status not in ("draft", "pending", "confirmed"):
            raise CannotCancel(self.status)
        previous, self.status = self.status, "cancelled"
        self._touch()
        self.record(Cancelled(previous_status=previous))

    def stock_reserved(self) -> None:
        """The saga's good outcome; late or repeated news changes nothing."""
        if self.status == "pending":
            self.status = "confirmed"
            self._touch()
            self.record(Confirmed())

    def stock_short(self, short_skus: Sequence[str]) -> None:
        if self.status == "pending":
            short = tuple(sorted(set(short_skus)))
            self.status = "rejected"
            self.rejection_reason = "not enough stock: " + ", ".join(short)
            self._touch()
            self.record(Rejected(short_skus=short))

    def waited_too_long(self, now: datetime, limit: timedelta) -> bool:
        """Pending for ``limit`` or longer: its stock never answered (a placed order's last
        change is the confirmation, so ``updated_at`` is when it began to wait)."""
        return self.status == "pending" and now - self.updated_at >= limit

    def time_out(self, now: datetime, limit: timedelta) -> None:
        """Reject an order whose stock never answered; a reservation arriving later is
        released like one that a cancel overtook. Not pending, or not that long: nothing."""
        if self.waited_too_long(now, limit):
            self.status = "rejected"
            self.rejection_reason = TIMED_OUT
            self._touch()
            self.record(Rejected(short_skus=()))

    def _replace_line(self, line: OrderLine) -> None:
        line.line_total  # noqa: B018 - refuses a line total beyond what money can hold
        before = list(self.lines)
        at = next((i for i, known in enumerate(self.lines) if known.sku == line.sku), None)
        if at is None:
            self.lines.append(line)
        else:
            self.lines[at] = line
        try:
            self.total  # noqa: B018 - and an order total beyond it
        except BusinessRuleViolated:
            self.lines[:] = before
            raise
        self._touch()
        self._lines_changed()

    def _lines_changed(self) -> None:
        # Order events carry the whole state, so one unannounced change per save is enough.
        if not any(isinstance(e, Started | LinesChanged) for e in self.pending_events):
            self.record(LinesChanged())

    def _must_be_draft(self) -> None:
        if self.status != "draft":
            raise OrderNotDraft(self.status)

    def _touch(self) -> None:
        self.updated_at = _now()
