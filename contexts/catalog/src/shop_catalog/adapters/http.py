"""The ``/products`` routes of API.md: admins manage products, anyone browses the catalog."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from shop_catalog.adapters.view import ProductCatalog, versioned
from shop_catalog.application.products import ProductAdmin
from shop_catalog.domain.model import DESCRIPTION_MAX, NAME_MAX, Product, is_sku
from shop_catalog_contract import VersionedProduct
from shop_kernel.auth import Principal, admin_only, caller
from shop_kernel.di import provide
from shop_kernel.domain import Money
from shop_kernel.idempotency import IdempotencyKey, idempotent
from shop_kernel.pages import Cursor, Limit, SearchText, page_start
from shop_kernel.preconditions import IfMatch, expected_version, tagged
from shop_kernel.snapshots import snapshot_of
from shop_kernel.unit_of_work import UnitOfWork
from shop_kernel.wire import Amount

# Bounds on what is read at all; the domain applies the real rules.
Quantity = Annotated[int, msgspec.Meta(ge=-1_000_000_000, le=1_000_000_000)]
Text = Annotated[str, msgspec.Meta(max_length=DESCRIPTION_MAX * 2)]
Name = Annotated[str, msgspec.Meta(max_length=NAME_MAX * 2)]


class NewProduct(msgspec.Struct, forbid_unknown_fields=True):
    sku: Annotated[str, msgspec.Meta(max_length=64)]
    name: Name
    price: Amount
    stock: Annotated[int, msgspec.Meta(ge=0, le=1_000_000_000)]
    description: Text = ""


class ProductChange(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | None = None
    description: Text | None = None
    price: Amount | None = None
    is_active: bool | None = None


class StockChange(msgspec.Struct, forbid_unknown_fields=True):
    adjustment: Quantity
    reason: Annotated[str, msgspec.Meta(max_length=1000)]


class ProductPage(msgspec.Struct):
    items: list[VersionedProduct]
    next_cursor: str | None


def _answer(product: Product) -> VersionedProduct:
    """A command's answer: the product as committed, in its one published shape."""
    return snapshot_of(product, VersionedProduct)


def _actor(request: Request[Principal, Any, Any]) -> str:
    return f"user:{request.user.user_id}"


class ProductsController(Controller):
    path = "/products"
    tags = ("catalog",)
    dependencies = {"admin": provide(ProductAdmin), "catalog": provide(ProductCatalog)}  # noqa: RUF012

    @post("/", guards=[admin_only], status_code=HTTP_201_CREATED, middleware=[idempotent])
    async def create(
        self,
        request: Request[Principal, Any, Any],
        data: JSONBody[NewProduct],
        admin: NamedDependency[ProductAdmin],
        uow: NamedDependency[UnitOfWork],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[VersionedProduct]:
        """Add a product (admins). Its price is in the shop's currency."""
        product = await admin.create(
            uow, sku=data.sku, name=data.name, description=data.description,
            price=Money(data.price.amount, data.price.currency), stock=data.stock,
            actor=_actor(request),
        )  # fmt: skip
        return tagged(_answer(product), HTTP_201_CREATED)

    @patch("/{sku:str}", guards=[admin_only])
    async def change(
        self,
        sku: FromPath[str],
        data: JSONBody[ProductChange],
        admin: NamedDependency[ProductAdmin],
        uow: NamedDependency[UnitOfWork],
        if_match: IfMatch = None,
    ) -> Response[VersionedProduct]:
        """Change name, description, price or activity (admins); ``If-Match`` is honoured."""
        price = Money(data.price.amount, data.price.currency) if data.price else None
        product = await admin.change(
            uow, sku, expected_version=expected_version(if_match), name=data.name,
            description=data.description, price=price, is_active=data.is_active,
        )  # fmt: skip
        return tagged(_answer(product))

    @post("/{sku:str}/stock", guards=[admin_only], status_code=HTTP_200_OK)
    async def adjust_stock(
        self,
        *,
        request: Request[Principal, Any, Any],
        sku: FromPath[str],
        data: JSONBody[StockChange],
        admin: NamedDependency[ProductAdmin],
        uow: NamedDependency[UnitOfWork],
        if_match: IfMatch = None,
    ) -> Response[VersionedProduct]:
        """Count stock in or out with a reason (admins); never below what is reserved."""
        product = await admin.adjust_stock(
            uow, sku, data.adjustment, data.reason, actor=_actor(request),
            expected_version=expected_version(if_match),
        )  # fmt: skip
        return tagged(_answer(product))

    @get("/")
    async def browse(
        self,
        catalog: NamedDependency[ProductCatalog],
        q: SearchText = None,
        limit: Limit = 20,
        cursor: Cursor = None,
    ) -> ProductPage:
        """Active products, by name or sku prefix; eventually consistent (the read view)."""
        after = page_start(q, cursor, valid_key=is_sku)
        entries, next_cursor = await catalog.search(q=q, limit=limit, after=after)
        return ProductPage(items=[versioned(e) for e in entries], next_cursor=next_cursor)

    @get("/{sku:str}")
    async def one(
        self,
        request: Request[Any, Any, Any],
        sku: FromPath[str],
        catalog: NamedDependency[ProductCatalog],
    ) -> Response[VersionedProduct]:
        """A product; an inactive one only for admins."""
        entry = await catalog.get(sku) if len(sku) <= 32 else None
        who = caller(request)
        if entry is None or not (entry["is_active"] or (who is not None and who.is_admin)):
            raise NotFoundException(f"no product {sku}")
        return tagged(versioned(entry))
