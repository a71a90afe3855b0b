"""Holding and giving back stock for orders: all lines or none, once per order."""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from shop_catalog.application.ports import Products, Reservations
from shop_catalog.domain.model import StockReservation
from shop_kernel.unit_of_work import UnitOfWork

SYSTEM = "orders"  # the actor of movements that orders cause


class StockKeeping:
    def __init__(self, products: Products, reservations: Reservations) -> None:
        self._products = products
        self._reservations = reservations

    async def reserve_stock_for_order(
        self, uow: UnitOfWork, order_id: uuid.UUID, lines: Mapping[str, int]
    ) -> StockReservation:
        """Reserve every line or none. A repeated request answers the first outcome."""
        async with uow:
            existing = await self._reservations.lock(uow, order_id)
            if existing is not None:
                return existing
            products = await self._products.lock(uow, lines)
            reservation = StockReservation.attempt(order_id, lines, products)
            if not await self._reservations.add(uow, reservation):
                # Another delivery of the same order won the insert (this one waited for it
                # to commit): its outcome stands, and the stock this attempt held in memory
                # is neither saved nor announced.
                for product in products.values():
                    product.pull_events()
                return await self._settled(uow, order_id)
            if reservation.status == "reserved":
                for sku, quantity in sorted(lines.items()):
                    await self._products.save(uow, products[sku])
                    await self._products.record_movement(
                        uow, products[sku], actor=SYSTEM, reserved_delta=quantity,
                        reason="reserved for order", order_id=order_id,
                    )  # fmt: skip
            await uow.commit()
        return reservation

    async def release_stock_for_order(self, uow: UnitOfWork, order_id: uuid.UUID) -> bool:
        """Give back exactly what the order holds, once; False when it holds nothing."""
        async with uow:
            reservation = await self._reservations.lock(uow, order_id)
            if reservation is None:
                # Cancelled before its reservation ran: remember it, so that the late
                # reservation finds the order settled and holds nothing. If a reservation
                # was committing meanwhile, the insert waited for it: release that one.
                settled = StockReservation(order_id=order_id, lines={}, status="released")
                if await self._reservations.add(uow, settled):
                    await uow.commit()
                    return False
                reservation = await self._settled(uow, order_id)
            if reservation.status != "reserved":
                return False
            products = await self._products.lock(uow, reservation.lines)
            reservation.release(products)
            await self._reservations.save(uow, reservation)
            for sku, quantity in sorted(reservation.lines.items()):
                await self._products.save(uow, products[sku])
                await self._products.record_movement(
                    uow, products[sku], actor=SYSTEM, reserved_delta=-quantity,
                    reason="released for order", order_id=order_id,
                )  # fmt: skip
            await uow.commit()
        return True

    async def _settled(self, uow: UnitOfWork, order_id: uuid.UUID) -> StockReservation:
        """The reservation a concurrent delivery just committed (a new statement sees it)."""
        reservation = await self._reservations.lock(uow, order_id)
        if reservation is None:  # pragma: no cover - the insert just met it
            raise RuntimeError(f"reservation of {order_id} vanished")
        return reservation
