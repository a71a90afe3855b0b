"""The shop's own product management (admins): create, change, count stock."""

from __future__ import annotations

from shop_catalog.application.ports import CatalogTransaction, CatalogUnitOfWork
from shop_catalog.domain.model import InvalidField, Product, ProductNotFound, Sku, is_sku
from shop_kernel.domain import Money, PreconditionFailed


class ProductAdmin:
    def __init__(self, transaction: CatalogUnitOfWork, currency: str) -> None:
        self._transaction = transaction
        self._currency = currency

    async def create(
        self, sku: str, name: str, description: str, price: Money, stock: int, *, actor: str
    ) -> Product:
        product = Product.create(Sku.parse(sku), name, description, self._priced(price), stock)
        async with self._transaction() as tx:
            await tx.products.add(product)
            if stock:
                await tx.products.record_movement(
                    product, actor=actor, on_hand_delta=stock, reason="initial stock"
                )
            await tx.commit()
        return product

    async def product(self, sku: str) -> Product:
        async with self._transaction() as tx:
            return await _existing(tx, sku)

    async def change(
        self,
        sku: str,
        *,
        expected_version: int | None,
        name: str | None = None,
        description: str | None = None,
        price: Money | None = None,
        is_active: bool | None = None,
    ) -> Product:
        async with self._transaction() as tx:
            product = await _existing(tx, sku, expected_version)
            product.change(
                name=name,
                description=description,
                price=self._priced(price) if price is not None else None,
                is_active=is_active,
            )
            if product.pending_events:
                await tx.products.save(product)
                await tx.commit()
        return product

    async def adjust_stock(
        self, sku: str, adjustment: int, reason: str, *, actor: str, expected_version: int | None
    ) -> Product:
        reason = reason.strip()
        if not 1 <= len(reason) <= 500 or "\x00" in reason:
            raise InvalidField("reason", "a reason is 1..500 characters, without null characters")
        async with self._transaction() as tx:
            product = await _existing(tx, sku, expected_version)
            product.adjust_stock(adjustment, reason)
            await tx.products.save(product)
            await tx.products.record_movement(
                product, actor=actor, on_hand_delta=adjustment, reason=reason
            )
            await tx.commit()
        return product

    def _priced(self, price: Money) -> Money:
        if price.currency != self._currency:
            raise InvalidField("price.currency", f"the shop sells in {self._currency} only")
        return price


async def _existing(
    tx: CatalogTransaction, sku: str, expected_version: int | None = None
) -> Product:
    product = await tx.products.get(sku) if is_sku(sku) else None
    if product is None:
        raise ProductNotFound(sku)
    if expected_version is not None and product.version != expected_version:
        raise PreconditionFailed(
            "the product changed since you read it", sku=sku, version=product.version
        )
    return product
