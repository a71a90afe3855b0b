"""The ``/orders`` routes of API.md: a customer's cart, its confirmation, and order history.

Commands answer the order as committed (with its ``ETag``); reads come from the order view.
Another customer's order is 404 for every verb, the same as an unknown id.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED

from shop_kernel.auth import Principal
from shop_kernel.di import provide
from shop_kernel.idempotency import IdempotencyKey, idempotent
from shop_kernel.pages import Cursor, Limit, page_start
from shop_kernel.preconditions import IfMatch, expected_version, tagged
from shop_kernel.snapshots import snapshot_of
from shop_kernel.unit_of_work import UnitOfWork
from shop_orders.adapters.view import OrderHistory, is_sort_key, versioned
from shop_orders.application.ordering import Caller, Item, Ordering, TargetOrder
from shop_orders.domain.model import MAX_LINES, Order, OrderNotFound
from shop_orders_contract import OrderStatus, VersionedOrder

# Bounds on what is read at all; the domain applies the real rules (quantity 1..1000: 422).
# Any integer a JSON parser reads exactly (the schema's bounds are exact as JSON numbers too);
# the domain answers what is out of its own range (1..1000 per line) with a 422.
Quantity = Annotated[int, msgspec.Meta(ge=-(2**53 - 1), le=2**53 - 1)]
SkuIn = Annotated[str, msgspec.Meta(max_length=64)]


class ItemIn(msgspec.Struct, forbid_unknown_fields=True):
    sku: SkuIn
    quantity: Quantity


class NewOrder(msgspec.Struct, forbid_unknown_fields=True):
    items: Annotated[list[ItemIn], msgspec.Meta(max_length=MAX_LINES * 10)] = msgspec.field(
        default_factory=list[ItemIn]
    )


class QuantityIn(msgspec.Struct, forbid_unknown_fields=True):
    quantity: Quantity


class OrderPage(msgspec.Struct):
    items: list[VersionedOrder]
    next_cursor: str | None


def _answer(order: Order) -> VersionedOrder:
    """A command's answer: the order as committed, in its one published shape."""
    return snapshot_of(order, VersionedOrder)


def _order_id(raw: str) -> uuid.UUID:
    """A path id that is no order id names no order: 404, like an unknown one."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise OrderNotFound(raw[:64]) from None


def _caller(request: Request[Principal, Any, Any]) -> Caller:
    return Caller(request.user.user_id, is_admin=request.user.is_admin)


def _target(
    request: Request[Principal, Any, Any], order_id: str, if_match: str | None
) -> TargetOrder:
    return TargetOrder(_caller(request), _order_id(order_id), expected_version(if_match))


class OrdersController(Controller):
    path = "/orders"
    tags = ("orders",)
    dependencies = {"ordering": provide(Ordering), "history": provide(OrderHistory)}  # noqa: RUF012

    @post("/", status_code=HTTP_201_CREATED, middleware=[idempotent])
    async def create(
        self,
        request: Request[Principal, Any, Any],
        ordering: NamedDependency[Ordering],
        uow: NamedDependency[UnitOfWork],
        data: JSONBody[NewOrder | None] = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[VersionedOrder]:
        """Start a draft, optionally with items (priced from the catalog, never the client)."""
        items = [Item(i.sku, i.quantity) for i in (data.items if data is not None else [])]
        order = await ordering.create(uow, _caller(request), items)
        return tagged(_answer(order), HTTP_201_CREATED)

    @get("/")
    async def history_page(
        self,
        *,
        request: Request[Principal, Any, Any],
        history: NamedDependency[OrderHistory],
        status: Annotated[OrderStatus | None, QueryParameter()] = None,
        customer_id: Annotated[uuid.UUID | None, QueryParameter()] = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> OrderPage:
        """Orders newest first: a customer's own; an admin's of everyone (or ``customer_id``)."""
        caller = _caller(request)
        if not caller.is_admin:
            if customer_id is not None and customer_id != caller.user_id:
                raise PermissionDeniedException("only admins list other customers' orders")
            customer_id = caller.user_id
        after = page_start(None, cursor, valid_key=is_sort_key)
        entries, next_cursor = await history.page(
            customer_id=customer_id, status=status, limit=limit, after=after
        )
        return OrderPage(items=[versioned(e) for e in entries], next_cursor=next_cursor)

    @get("/{order_id:str}")
    async def one(
        self,
        request: Request[Principal, Any, Any],
        order_id: FromPath[str],
        history: NamedDependency[OrderHistory],
    ) -> Response[VersionedOrder]:
        """An order, to its customer or an admin (from the view: eventually consistent)."""
        caller, wanted = _caller(request), _order_id(order_id)
        entry = await history.get(wanted)
        if entry is None or not (caller.is_admin or entry["customer_id"] == str(caller.user_id)):
            raise OrderNotFound(wanted)
        return tagged(versioned(entry))

    @post("/{order_id:str}/items", status_code=HTTP_200_OK)
    async def add_item(
        self,
        *,
        request: Request[Principal, Any, Any],
        order_id: FromPath[str],
        data: JSONBody[ItemIn],
        ordering: NamedDependency[Ordering],
        uow: NamedDependency[UnitOfWork],
        if_match: IfMatch = None,
    ) -> Response[VersionedOrder]:
        """Add a line, or increase it; only in a draft. Drafts do not check stock."""
        target = _target(request, order_id, if_match)
        order = await ordering.add_item(uow, target, Item(data.sku, data.quantity))
        return tagged(_answer(order))

    @put("/{order_id:str}/items/{sku:str}")
    async def set_quantity(
        self,
        *,
        request: Request[Principal, Any, Any],
        order_id: FromPath[str],
        sku: FromPath[str],
        data: JSONBody[QuantityIn],
        ordering: NamedDependency[Ordering],
        uow: NamedDependency[UnitOfWork],
        if_match: IfMatch = None,
    ) -> Response[VersionedOrder]:
        """Set a line's quantity (1..1000)."""
        target = _target(request, order_id, if_match)
        order = await ordering.set_quantity(uow, target, Item(sku, data.quantity))
        return tagged(_answer(order))

    @delete("/{order_id:str}/items/{sku:str}", status_code=HTTP_200_OK)
    async def remove_item(
        self,
        *,
        request: Request[Principal, Any, Any],
        order_id: FromPath[str],
        sku: FromPath[str],
        ordering: NamedDependency[Ordering],
        uow: NamedDependency[UnitOfWork],
        if_match: IfMatch = None,
    ) -> Response[VersionedOrder]:
        """Remove a line."""
        order = await ordering.remove_item(uow, _target(request, order_id, if_match), sku)
        return tagged(_answer(order))

    @post("/{order_id:str}/confirm", status_code=HTTP_202_ACCEPTED, middleware=[idempotent])
    async def confirm(
        self,
        *,
        request: Request[Principal, Any, Any],
        order_id: FromPath[str],
        ordering: NamedDependency[Ordering],
        uow: NamedDependency[UnitOfWork],
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[VersionedOrder]:
        """Place the order: it is pending until stock is reserved (confirmed) or short
        (rejected), within seconds."""
        order = await ordering.confirm(uow, _target(request, order_id, if_match))
        return tagged(_answer(order), HTTP_202_ACCEPTED)

    @post("/{order_id:str}/cancel", status_code=HTTP_200_OK)
    async def cancel(
        self,
        request: Request[Principal, Any, Any],
        order_id: FromPath[str],
        ordering: NamedDependency[Ordering],
        uow: NamedDependency[UnitOfWork],
        if_match: IfMatch = None,
    ) -> Response[VersionedOrder]:
        """Cancel a draft, pending or confirmed order (its customer or an admin); any stock it
        holds is given back."""
        order = await ordering.cancel(uow, _target(request, order_id, if_match))
        return tagged(_answer(order))
