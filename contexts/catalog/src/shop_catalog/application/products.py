"""The shop's own product management (admins): create, change, count stock."""

from __future__ import annotations

from shop_catalog.application.ports import Products
from shop_catalog.domain.model import InvalidField, Product, ProductNotFound, is_sku, parse_sku
from shop_kernel.domain import Money, PreconditionFailed
from shop_kernel.unit_of_work import UnitOfWork


class ProductAdmin:
    def __init__(self, products: Products, currency: str) -> None:
        self._products = products
        self._currency = currency

    async def create(
        self,
        uow: UnitOfWork,
        *,
        sku: str,
        name: str,
        description: str,
        price: Money,
        stock: int,
        actor: str,
    ) -> Product:
        product = Product.create(parse_sku(sku), name, description, self._priced(price), stock)
        async with uow:
            await self._products.add(uow, product)
            if stock:
                await self._products.record_movement(
                    uow, product, actor=actor, on_hand_delta=stock, reason="initial stock"
                )
            await uow.commit()
        return product

    async def product(self, uow: UnitOfWork, sku: str) -> Product:
        async with uow:
            return await self._existing(uow, sku)

    async def change(
        self,
        uow: UnitOfWork,
        sku: str,
        *,
        expected_version: int | None,
        name: str | None = None,
        description: str | None = None,
        price: Money | None = None,
        is_active: bool | None = None,
    ) -> Product:
        async with uow:
            product = await self._existing(uow, sku, expected_version)
            product.change(
                name=name,
                description=description,
                price=self._priced(price) if price is not None else None,
                is_active=is_active,
            )
            if product.pending_events:
                await self._products.save(uow, product)
                await uow.commit()
        return product

    async def adjust_stock(
        self,
        uow: UnitOfWork,
        sku: str,
        adjustment: int,
        reason: str,
        *,
        actor: str,
        expected_version: int | None,
    ) -> Product:
        reason = reason.strip()
        if not 1 <= len(reason) <= 500 or "\x00" in reason:
            raise InvalidField("reason", "a reason is 1..500 characters, without null characters")
        async with uow:
            product = await self._existing(uow, sku, expected_version)
            product.adjust_stock(adjustment, reason)
            await self._products.save(uow, product)
            await self._products.record_movement(
                uow, product, actor=actor, on_hand_delta=adjustment, reason=reason
            )
            await uow.commit()
        return product

    def _priced(self, price: Money) -> Money:
        if price.currency != self._currency:
            raise InvalidField("price.currency", f"the shop sells in {self._currency} only")
        return price

    async def _existing(
        self, uow: UnitOfWork, sku: str, expected_version: int | None = None
    ) -> Product:
        product = await self._products.get(uow, sku) if is_sku(sku) else None
        if product is None:
            raise ProductNotFound(sku)
        if expected_version is not None and product.version != expected_version:
            raise PreconditionFailed(
                "the product changed since you read it", sku=sku, version=product.version
            )
        return product
