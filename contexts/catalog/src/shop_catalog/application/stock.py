"""Holding and giving back stock for orders: all lines or none, once per order."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from shop_catalog.application.ports import CatalogUnitOfWork
from shop_catalog.domain.model import StockReservation

SYSTEM = "orders"  # the actor of movements that orders cause


class StockKeeping:
    def __init__(self, transaction: CatalogUnitOfWork) -> None:
        self._transaction = transaction

    async def reserve_stock_for_order(
        self, order_id: uuid.UUID, lines: Mapping[str, int]
    ) -> StockReservation:
        """Reserve every line or none. A repeated request answers the first outcome."""
        async with self._transaction() as tx:
            existing = await tx.reservations.lock(order_id)
            if existing is not None:
                return existing
            products = await tx.products.lock(lines)
            reservation = StockReservation.attempt(order_id, lines, products)
            if not await tx.reservations.add(reservation):
                # Another delivery of the same order won the insert: its outcome stands, and
                # the stock this attempt held in memory is neither saved nor announced.
                for product in products.values():
                    product.pull_events()
                return await self._outcome(order_id)
            if reservation.status == "reserved":
                for sku, quantity in sorted(lines.items()):
                    await tx.products.save(products[sku])
                    await tx.products.record_movement(
                        products[sku], actor=SYSTEM, reserved_delta=quantity,
                        reason="reserved for order", order_id=order_id,
                    )  # fmt: skip
            await tx.commit()
        return reservation

    async def release_stock_for_order(self, order_id: uuid.UUID) -> bool:
        """Give back exactly what the order holds, once; False when it holds nothing."""
        async with self._transaction() as tx:
            reservation = await tx.reservations.lock(order_id)
            if reservation is None:
                # Cancelled before its reservation ran: remember it, so that the late
                # reservation finds the order settled and holds nothing. If a reservation
                # was committing meanwhile, the insert waited for it: release that one.
                settled = StockReservation(order_id=order_id, lines={}, status="released")
                if await tx.reservations.add(settled):
                    await tx.commit()
                    return False
                reservation = await tx.reservations.lock(order_id)
            if reservation is None or reservation.status != "reserved":
                return False
            products = await tx.products.lock(reservation.lines)
            reservation.release(products)
            await tx.reservations.save(reservation)
            for sku, quantity in sorted(reservation.lines.items()):
                await tx.products.save(products[sku])
                await tx.products.record_movement(
                    products[sku], actor=SYSTEM, reserved_delta=-quantity,
                    reason="released for order", order_id=order_id,
                )  # fmt: skip
            await tx.commit()
        return True

    async def _outcome(self, order_id: uuid.UUID) -> StockReservation:
        async with self._transaction() as tx:
            reservation = await tx.reservations.lock(order_id)
        if reservation is None:  # pragma: no cover - it was just seen to exist
            raise RuntimeError(f"reservation of {order_id} vanished")
        return reservation
