"""One shape per state: a product's snapshot is what its events carry, its view stores and the
API answers, from one translation; the shapes of the release before are still read."""

from __future__ import annotations

import msgspec
import pytest

import shop_catalog_contract as contract
from shop_catalog.adapters.sql import APART, products
from shop_catalog.adapters.translations import TRANSLATIONS, product_snapshot
from shop_catalog.adapters.view import document, versioned
from shop_catalog.domain.model import Product, parse_sku
from shop_catalog.module import module
from shop_kernel.domain import Money
from shop_kernel.messaging.events import EventRegistry, LegacyEvent, encode_event
from shop_kernel.sql import state_values
from shop_kernel.wire import Amount


def counted_product() -> Product:
    product = Product.create(parse_sku("MUG-1"), "Mug", "Blue", Money(1250, "EUR"), 10)
    product.saved_as(1)
    product.pull_events()
    product.hold(3)
    product.adjust_stock(5, "delivery")
    product.saved_as(2)
    return product


def test_every_event_carries_the_snapshot_the_view_stores_and_the_api_answers() -> None:
    product = counted_product()
    snapshot = product_snapshot(product)
    assert snapshot == contract.ProductSnapshot(
        sku="MUG-1", name="Mug", description="Blue", price=Amount(1250, "EUR"),
        stock=contract.Stock(on_hand=15, reserved=3, available=12), is_active=True,
    )  # fmt: skip
    held, adjusted = [TRANSLATIONS[type(e)](product, e) for e in product.pull_events()]
    assert isinstance(held, contract.StockHeld)
    assert isinstance(adjusted, contract.StockAdjusted)
    assert (adjusted.product, adjusted.delta, adjusted.reason) == (snapshot, 5, "delivery")
    assert (adjusted.aggregate_id, adjusted.aggregate_version) == ("MUG-1", 2)
    stored = {"_id": "MUG-1", **document(snapshot), "version": 2}
    assert versioned(stored) == contract.VersionedProduct(
        **msgspec.structs.asdict(snapshot), version=2
    )


def test_a_column_is_each_field_of_the_snapshot_but_those_kept_apart() -> None:
    fields = {f.name for f in msgspec.structs.fields(contract.ProductSnapshot)}
    values = state_values(product_snapshot(counted_product()), products, apart=APART)
    assert set(values) == fields - set(APART)
    assert set(values) <= set(products.c.keys())


def test_a_document_of_the_release_before_is_read_in_the_current_shape() -> None:
    flat = {
        "_id": "MUG-1", "name": "Mug", "name_key": "mug", "description": "",
        "price": {"amount": 100, "currency": "EUR"}, "on_hand": 7, "reserved": 2,
        "is_active": True, "version": 4,
    }  # fmt: skip
    assert versioned(flat).stock == contract.Stock(on_hand=7, reserved=2, available=5)


@pytest.mark.parametrize("kind", contract.LEGACY_PRODUCT_EVENTS, ids=lambda k: k.__name__)
def test_the_events_of_the_release_before_are_read_as_the_current_ones(
    kind: type[LegacyEvent],
) -> None:
    extra = {"delta": 4, "reason": "count"} if kind is contract.StockAdjustedV1 else {}
    old = kind(
        aggregate_id="MUG-1", aggregate_version=5, sku="MUG-1", name="Mug", description="",
        price=Amount(1250, "EUR"), is_active=True, on_hand=9, reserved=4, **extra,
    )  # fmt: skip
    read = EventRegistry(module.events).decode(encode_event(old))
    assert type(read) is kind.current
    assert isinstance(read, contract.ProductEvent)
    assert read.product.stock == contract.Stock(on_hand=9, reserved=4, available=5)
    assert (read.event_id, read.aggregate_version) == (old.event_id, 5)
    for name, value in extra.items():
        assert getattr(read, name) == value
