"""How what happened to products and reservations is told to the other contexts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import shop_catalog_contract as contract
from shop_catalog.domain import model
from shop_kernel.domain import DomainEvent
from shop_kernel.wire import Amount


def _state(
    event_type: type[contract.ProductState],
) -> Callable[[Any, Any], contract.ProductState]:
    def translate(product: model.Product, _event: DomainEvent) -> contract.ProductState:
        return event_type(**_product_state(product))

    return translate


def _product_state(product: model.Product) -> dict[str, Any]:
    return {
        "aggregate_id": product.sku.value,
        "aggregate_version": product.version,
        "sku": product.sku.value,
        "name": product.name,
        "description": product.description,
        "price": Amount.of(product.price),
        "is_active": product.is_active,
        "on_hand": product.on_hand,
        "reserved": product.reserved,
    }


def _adjusted(product: model.Product, event: model.StockAdjusted) -> contract.StockAdjusted:
    return contract.StockAdjusted(**_product_state(product), delta=event.delta, reason=event.reason)


def _lines(reservation: model.StockReservation) -> list[contract.ReservedLine]:
    return [
        contract.ReservedLine(sku, quantity) for sku, quantity in sorted(reservation.lines.items())
    ]


def _reserved(reservation: model.StockReservation, _event: DomainEvent) -> contract.StockReserved:
    return contract.StockReserved(
        aggregate_id=str(reservation.order_id), aggregate_version=reservation.version,
        order_id=reservation.order_id, lines=_lines(reservation),
    )  # fmt: skip


def _failed(
    reservation: model.StockReservation, _event: DomainEvent
) -> contract.StockReservationFailed:
    return contract.StockReservationFailed(
        aggregate_id=str(reservation.order_id), aggregate_version=reservation.version,
        order_id=reservation.order_id,
        shortfalls=[
            contract.ShortLine(s.sku, s.requested, s.available) for s in reservation.shortfalls
        ],
    )  # fmt: skip


def _released(reservation: model.StockReservation, _event: DomainEvent) -> contract.StockReleased:
    return contract.StockReleased(
        aggregate_id=str(reservation.order_id), aggregate_version=reservation.version,
        order_id=reservation.order_id, lines=_lines(reservation),
    )  # fmt: skip


TRANSLATIONS: Mapping[type[DomainEvent], Callable[[Any, Any], Any]] = {
    model.ProductCreated: _state(contract.ProductCreated),
    model.ProductChanged: _state(contract.ProductChanged),
    model.StockHeld: _state(contract.ProductChanged),
    model.StockAdjusted: _adjusted,
    model.ReservationMade: _reserved,
    model.ReservationFailed: _failed,
    model.ReservationReleased: _released,
}
