"""How what happened to products and reservations is told to the other contexts: a product's
snapshot each time, a reservation's outcome."""

from __future__ import annotations

import shop_catalog_contract as contract
from shop_catalog.domain import model
from shop_kernel.domain import DomainEvent
from shop_kernel.snapshots import Translation, snapshot_of, state_events


def product_snapshot(product: model.Product) -> contract.ProductSnapshot:
    """The one translation of a product into its published shape."""
    return snapshot_of(product, contract.ProductSnapshot)


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


TRANSLATIONS: dict[type[DomainEvent], Translation] = {
    **state_events(
        "product",
        product_snapshot,
        {
            model.ProductCreated: contract.ProductCreated,
            model.ProductChanged: contract.ProductChanged,
            model.StockHeld: contract.StockHeld,
            model.StockAdjusted: contract.StockAdjusted,
        },
        identity="sku",
    ),
    model.ReservationMade: _reserved,
    model.ReservationFailed: _failed,
    model.ReservationReleased: _released,
}
