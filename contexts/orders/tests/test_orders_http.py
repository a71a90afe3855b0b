"""The /orders rows of API.md through the whole app: cart, confirmation, saga, history, access."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from shop_devkit.app_plugin import eventually, new_admin, new_customer
from shop_kernel.settings import Settings

Client = AsyncTestClient[Litestar]
EUR = "EUR"


def new_sku() -> str:
    return f"ORD-{uuid.uuid4().hex[:8].upper()}"


async def product(
    client: httpx.AsyncClient, boss: dict[str, str], *, price: int = 1250, stock: int = 10
) -> str:
    sku = new_sku()
    body = {"sku": sku, "name": f"Mug {sku}", "price": {"amount": price, "currency": EUR},
            "stock": stock}  # fmt: skip
    made = await client.post("/products", json=body, headers=boss)
    assert made.status_code == 201, made.text
    return sku


async def stock_of(client: httpx.AsyncClient, boss: dict[str, str], sku: str) -> dict[str, int]:
    return (await client.get(f"/products/{sku}", headers=boss)).json()["stock"]


async def me(client: httpx.AsyncClient, who: dict[str, str]) -> str:
    return (await client.get("/users/me", headers=who)).json()["id"]


def money(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": EUR}


async def seen(
    client: httpx.AsyncClient, who: dict[str, str], order_id: str, **expected: Any
) -> dict[str, Any]:
    """Wait until the order view shows ``expected``; return the order as then shown."""
    shown: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal shown
        response = await client.get(f"/orders/{order_id}", headers=who)
        shown = response.json() if response.status_code == 200 else {}
        return all(shown.get(k) == v for k, v in expected.items())

    await eventually(check, f"order {order_id} shown with {expected}")
    return shown


async def test_a_cart_is_priced_from_the_catalog_and_totals_its_lines(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    boss, shopper = await new_admin(shop_client, shop_settings), await new_customer(shop_client)
    mug, pot = (
        await product(shop_client, boss, price=1250),
        await product(shop_client, boss, price=399),
    )
    empty = await shop_client.post("/orders", headers=shopper)
    assert empty.status_code == 201, empty.text
    body = empty.json()
    assert (body["status"], body["lines"], body["total"], body["version"]) == (
        "draft",
        [],
        money(0),
        1,
    )
    assert body["customer_id"] == await me(shop_client, shopper)
    assert body["rejection_reason"] is None
    assert empty.headers["etag"] == '"1"'
    made = await shop_client.post(
        "/orders", json={"items": [{"sku": mug, "quantity": 2}, {"sku": pot, "quantity": 1},
                                   {"sku": mug, "quantity": 1}]}, headers=shopper,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    order = made.json()
    assert order["lines"] == [
        {"sku": mug, "name": f"Mug {mug}", "unit_price": money(1250), "quantity": 3,
         "line_total": money(3750)},
        {"sku": pot, "name": f"Mug {pot}", "unit_price": money(399), "quantity": 1,
         "line_total": money(399)},
    ]  # fmt: skip
    assert order["total"] == money(4149)
    # The price is frozen in the line: a later price change does not touch it.
    await shop_client.patch(f"/products/{mug}", json={"price": money(9999)}, headers=boss)
    more = await shop_client.post(
        f"/orders/{order['id']}/items", json={"sku": mug, "quantity": 1}, headers=shopper
    )
    assert more.status_code == 200, more.text
    assert more.json()["lines"][0]["unit_price"] == money(1250)
    assert more.json()["lines"][0]["quantity"] == 4
    assert more.json()["total"] == money(4 * 1250 + 399)
    assert more.headers["etag"] == f'"{more.json()["version"]}"'
    shown = await seen(shop_client, shopper, order["id"], version=more.json()["version"])
    assert shown == more.json()  # the view holds exactly what the command answered


async def test_unknown_inactive_and_out_of_range_items_are_refused_naming_the_field(
    shop_client: Client, shop_settings: Settings
) -> None:
    boss, shopper = await new_admin(shop_client, shop_settings), await new_customer(shop_client)
    sku, retired = await product(shop_client, boss), await product(shop_client, boss)
    await shop_client.patch(f"/products/{retired}", json={"is_active": False}, headers=boss)
    for items, field in (
        ([{"sku": sku, "quantity": 1}, {"sku": "NOPE-404", "quantity": 1}], "items[1].sku"),
        ([{"sku": retired, "quantity": 1}], "items[0].sku"),
        ([{"sku": sku, "quantity": 0}], "items[0].quantity"),
        ([{"sku": sku, "quantity": 1001}], "items[0].quantity"),
        ([{"sku": sku, "quantity": 600}, {"sku": sku, "quantity": 401}], "items[1].quantity"),
    ):
        refused = await shop_client.post("/orders", json={"items": items}, headers=shopper)
        assert refused.status_code == 422, (items, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in refused.json()["errors"]] == [field]
    order = (await shop_client.post("/orders", headers=shopper)).json()
    items = f"/orders/{order['id']}/items"
    for body, field in (
        ({"sku": "NOPE-404", "quantity": 1}, "sku"),
        ({"sku": retired, "quantity": 1}, "sku"),
        ({"sku": sku, "quantity": -1}, "quantity"),
    ):
        refused = await shop_client.post(items, json=body, headers=shopper)
        assert refused.status_code == 422, refused.text
        assert [e["field"] for e in refused.json()["errors"]] == [field]
    assert (
        await shop_client.post(items, json={"sku": sku, "quantity": 1000}, headers=shopper)
    ).status_code == 200
    over = await shop_client.post(items, json={"sku": sku, "quantity": 1}, headers=shopper)
    assert over.status_code == 422  # the line would exceed 1000
    for bad in ({"sku": sku}, {"sku": sku, "quantity": "1"}, {"sku": sku, "quantity": 1, "x": 1},
                {"sku": sku, "quantity": 2**64}):  # fmt: skip
        refused = await shop_client.post(items, json=bad, headers=shopper)
        assert refused.status_code in {400, 422}, bad
        assert refused.headers["content-type"].startswith("application/problem+json")
    after = (await shop_client.put(f"{items}/{sku}", json={"quantity": 7}, headers=shopper)).json()
    assert after["lines"][0]["quantity"] == 7
    assert after["total"] == money(7 * 1250)


async def test_a_drafts_lines_change_and_if_match_guards_each_change(
    shop_client: Client, shop_settings: Settings
) -> None:
    boss, shopper = await new_admin(shop_client, shop_settings), await new_customer(shop_client)
    a, b = await product(shop_client, boss, stock=1), await product(shop_client, boss)
    order = (await shop_client.post("/orders", headers=shopper)).json()
    path = f"/orders/{order['id']}"
    # Drafts do not check stock: 5 of a product that has 1 is fine until confirmation.
    added = await shop_client.post(f"{path}/items", json={"sku": a, "quantity": 5}, headers=shopper)
    assert added.status_code == 200
    stale = {**shopper, "If-Match": '"1"'}
    refused = await shop_client.post(f"{path}/items", json={"sku": b, "quantity": 1}, headers=stale)
    assert refused.status_code == 412
    current = {**shopper, "If-Match": added.headers["etag"]}
    both = await shop_client.post(f"{path}/items", json={"sku": b, "quantity": 2}, headers=current)
    assert both.status_code == 200
    assert [line["sku"] for line in both.json()["lines"]] == [a, b]
    removed = await shop_client.delete(f"{path}/items/{a}", headers=shopper)
    assert removed.status_code == 200
    assert [line["sku"] for line in removed.json()["lines"]] == [b]
    assert removed.json()["version"] == both.json()["version"] + 1
    assert (await shop_client.delete(f"{path}/items/{a}", headers=shopper)).status_code == 404
    assert (
        await shop_client.put(f"{path}/items/{a}", json={"quantity": 1}, headers=shopper)
    ).status_code == 404
    for bad_tag in ('"x"', '"999"', "W/junk"):
        response = await shop_client.delete(
            f"{path}/items/{b}", headers={**shopper, "If-Match": bad_tag}
        )
        assert response.status_code == 412, bad_tag


async def test_confirmation_reserves_stock_and_the_order_becomes_confirmed(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    boss, shopper = await new_admin(shop_client, shop_settings), await new_customer(shop_client)
    sku = await product(shop_client, boss, stock=10)
    empty = (await shop_client.post("/orders", headers=shopper)).json()
    assert (
        await shop_client.post(f"/orders/{empty['id']}/confirm", headers=shopper)
    ).status_code == 409
    order = (await shop_client.post("/orders", json={"items": [{"sku": sku, "quantity": 3}]},
                                    headers=shopper)).json()  # fmt: skip
    placed = await shop_client.post(f"/orders/{order['id']}/confirm", headers=shopper)
    assert placed.status_code == 202, placed.text
    assert placed.json()["status"] == "pending"
    confirmed = await seen(shop_client, shopper, order["id"], status="confirmed")
    assert confirmed["version"] == placed.json()["version"] + 1
    assert confirmed["lines"] == placed.json()["lines"]
    await eventually(
        lambda: _is(
            stock_of(shop_client, boss, sku), {"on_hand": 10, "reserved": 3, "available": 7}
        ),
        "three reserved",
    )
    again = await shop_client.post(f"/orders/{order['id']}/confirm", headers=shopper)
    assert again.status_code == 409  # not a draft any more
    lines = await shop_client.post(f"/orders/{order['id']}/items", json={"sku": sku, "quantity": 1},
                                   headers=shopper)  # fmt: skip
    assert lines.status_code == 409
    # Cancelling a confirmed order gives its stock back.
    cancelled = await shop_client.post(f"/orders/{order['id']}/cancel", headers=shopper)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    await eventually(
        lambda: _is(
            stock_of(shop_client, boss, sku), {"on_hand": 10, "reserved": 0, "available": 10}
        ),
        "the reservation released",
    )
    assert (
        await shop_client.post(f"/orders/{order['id']}/cancel", headers=shopper)
    ).status_code == 409


async def test_a_shortage_rejects_the_order_naming_the_short_skus_and_reserves_nothing(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    boss, shopper = await new_admin(shop_client, shop_settings), await new_customer(shop_client)
    plenty, scarce = (
        await product(shop_client, boss, stock=50),
        await product(shop_client, boss, stock=2),
    )
    items = [{"sku": plenty, "quantity": 5}, {"sku": scarce, "quantity": 3}]
    order = (await shop_client.post("/orders", json={"items": items}, headers=shopper)).json()
    await shop_client.post(f"/orders/{order['id']}/confirm", headers=shopper)
    rejected = await seen(shop_client, shopper, order["id"], status="rejected")
    assert rejected["rejection_reason"] is not None
    assert scarce in rejected["rejection_reason"]
    assert plenty not in rejected["rejection_reason"]
    assert (await stock_of(shop_client, boss, plenty))["reserved"] == 0
    assert (await stock_of(shop_client, boss, scarce))["reserved"] == 0
    assert (
        await shop_client.post(f"/orders/{order['id']}/cancel", headers=shopper)
    ).status_code == 409


async def test_a_cancel_racing_the_pending_reservation_ends_with_no_stock_held(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    boss, shopper = await new_admin(shop_client, shop_settings), await new_customer(shop_client)
    sku = await product(shop_client, boss, stock=10)
    ids = []
    for _ in range(5):
        order = (await shop_client.post("/orders", json={"items": [{"sku": sku, "quantity": 2}]},
                                        headers=shopper)).json()  # fmt: skip
        await shop_client.post(f"/orders/{order['id']}/confirm", headers=shopper)
        cancelled = await shop_client.post(f"/orders/{order['id']}/cancel", headers=shopper)
        assert cancelled.status_code == 200  # pending (or already confirmed) can be cancelled
        ids.append(order["id"])
    for order_id in ids:
        await seen(shop_client, shopper, order_id, status="cancelled")
    await eventually(
        lambda: _is(
            stock_of(shop_client, boss, sku), {"on_hand": 10, "reserved": 0, "available": 10}
        ),
        "nothing held for cancelled orders",
    )


async def test_another_customers_order_is_not_found_for_every_verb(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    boss, owner = await new_admin(shop_client, shop_settings), await new_customer(shop_client)
    stranger = await new_customer(shop_client)
    sku = await product(shop_client, boss)
    order = (await shop_client.post("/orders", json={"items": [{"sku": sku, "quantity": 1}]},
                                    headers=owner)).json()  # fmt: skip
    path = f"/orders/{order['id']}"
    await seen(shop_client, owner, order["id"], version=order["version"])
    attempts = [
        ("GET", path, None), ("POST", f"{path}/items", {"sku": sku, "quantity": 1}),
        ("PUT", f"{path}/items/{sku}", {"quantity": 2}), ("DELETE", f"{path}/items/{sku}", None),
        ("POST", f"{path}/confirm", None), ("POST", f"{path}/cancel", None),
    ]  # fmt: skip
    unknown = f"/orders/{uuid.uuid4()}"
    for method, url, body in attempts:
        theirs = await shop_client.request(method, url, json=body, headers=stranger)
        assert theirs.status_code == 404, (method, url, theirs.text)
        nothing = await shop_client.request(
            method, url.replace(path, unknown), json=body, headers=stranger
        )
        assert nothing.status_code == 404
        assert theirs.json()["title"] == nothing.json()["title"]
        assert (await shop_client.request(method, url, json=body)).status_code == 401
    for method, url, body in attempts[1:5]:  # an admin may look and cancel, but not shop for them
        assert (await shop_client.request(method, url, json=body, headers=boss)).status_code == 404
    assert (await shop_client.get(path, headers=boss)).status_code == 200
    assert (await shop_client.get("/orders/not-an-id", headers=owner)).status_code == 404
    untouched = (await shop_client.get(path, headers=owner)).json()
    assert untouched["version"] == order["version"]
    assert (await shop_client.post(f"{path}/cancel", headers=boss)).status_code == 200


async def test_history_pages_newest_first_by_status_and_admins_see_everyone(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    boss, shopper = await new_admin(shop_client, shop_settings), await new_customer(shop_client)
    other = await new_customer(shop_client)
    sku = await product(shop_client, boss)
    mine = [(await shop_client.post("/orders", headers=shopper)).json()["id"] for _ in range(5)]
    theirs = (await shop_client.post("/orders", headers=other)).json()["id"]
    cancelled = await shop_client.post(f"/orders/{mine[1]}/cancel", headers=shopper)
    assert cancelled.status_code == 200
    await shop_client.post(
        f"/orders/{mine[2]}/items", json={"sku": sku, "quantity": 1}, headers=shopper
    )
    await seen(shop_client, shopper, mine[1], status="cancelled")
    await seen(shop_client, shopper, mine[2], version=2)
    await seen(shop_client, other, theirs, status="draft")

    async def walk(query: str, who: dict[str, str], limit: int = 2) -> list[str]:
        found: list[str] = []
        cursor = None
        while True:
            suffix = f"&cursor={cursor}" if cursor else ""
            page = await shop_client.get(f"/orders?limit={limit}{query}{suffix}", headers=who)
            assert page.status_code == 200, page.text
            found += [item["id"] for item in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return found

    assert await walk("", shopper) == list(reversed(mine))
    assert await walk("&status=cancelled", shopper) == [mine[1]]
    assert await walk("&status=draft", shopper, limit=1) == [mine[4], mine[3], mine[2], mine[0]]
    customer_id = await me(shop_client, shopper)
    assert await walk(f"&customer_id={customer_id}", boss, limit=3) == list(reversed(mine))
    everyone = await walk("", boss, limit=100)
    assert everyone.index(theirs) < everyone.index(mine[4])  # newest first across customers
    other_id = await me(shop_client, other)
    assert (
        await shop_client.get(f"/orders?customer_id={other_id}", headers=shopper)
    ).status_code == 403
    for bad in ("?limit=0", "?limit=101", "?cursor=abc", "?status=lost", "?customer_id=x"):
        response = await shop_client.get(f"/orders{bad}", headers=shopper)
        assert response.status_code in {400, 422}, bad
    assert (await shop_client.get("/orders")).status_code == 401


async def test_repeated_creating_posts_with_one_key_make_one_order_and_one_confirmation(
    shop_client: Client, shop_settings: Settings
) -> None:
    boss, shopper = await new_admin(shop_client, shop_settings), await new_customer(shop_client)
    sku = await product(shop_client, boss)
    body = {"items": [{"sku": sku, "quantity": 2}]}
    key = {**shopper, "Idempotency-Key": uuid.uuid4().hex}
    first = await shop_client.post("/orders", json=body, headers=key)
    again = await shop_client.post("/orders", json=body, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["etag"] == first.headers["etag"]
    other = await shop_client.post("/orders", json={"items": []}, headers=key)
    assert other.status_code == 422
    confirm = f"/orders/{first.json()['id']}/confirm"
    confirm_key = {**shopper, "Idempotency-Key": uuid.uuid4().hex}
    placed = await shop_client.post(confirm, headers=confirm_key)
    replayed = await shop_client.post(confirm, headers=confirm_key)
    assert (placed.status_code, replayed.status_code) == (202, 202)
    assert replayed.json() == placed.json()
    assert (
        await shop_client.post(confirm, headers=shopper)
    ).status_code == 409  # no key: a new try


@pytest.mark.parametrize("path", ["/orders", "/orders/{id}/confirm"])
async def test_the_openapi_document_shows_the_idempotency_key(
    shop_client: Client, path: str
) -> None:
    paths = (await shop_client.get("/schema/openapi.json")).json()["paths"]
    operation = paths[path.replace("{id}", "{order_id}")]["post"]
    assert "Idempotency-Key" in {p["name"] for p in operation.get("parameters", [])}


async def test_a_draft_needs_no_body_and_the_schema_says_so(shop_client: Client) -> None:
    # API.md: {items?: [...]}; an absent body is an empty draft, so the body is not required.
    shopper = await new_customer(shop_client)
    made = await shop_client.post("/orders", headers=shopper)
    assert made.status_code == 201, made.text
    assert (made.json()["status"], made.json()["lines"]) == ("draft", [])
    paths = (await shop_client.get("/schema/openapi.json")).json()["paths"]
    assert paths["/orders"]["post"]["requestBody"]["required"] is False
    assert paths["/orders/{order_id}/items"]["post"]["requestBody"]["required"] is True


async def _is(value: Any, expected: Any) -> bool:
    return await value == expected


async def test_an_erased_customers_orders_keep_their_lines_and_totals(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    boss, shopper = await new_admin(shop_client, shop_settings), await new_customer(shop_client)
    sku = await product(shop_client, boss, price=700)
    customer_id = await me(shop_client, shopper)
    order = (await shop_client.post("/orders", json={"items": [{"sku": sku, "quantity": 3}]},
                                    headers=shopper)).json()  # fmt: skip
    await shop_client.post(f"/orders/{order['id']}/confirm", headers=shopper)
    confirmed = await seen(shop_client, boss, order["id"], status="confirmed")
    assert (await shop_client.delete("/users/me", headers=shopper)).status_code == 204
    await eventually(
        lambda: _is(_status(shop_client.get(f"/users/{customer_id}", headers=boss)), 404),
        "the account gone from the directory",
    )
    kept = (await shop_client.get(f"/orders/{order['id']}", headers=boss)).json()
    assert kept == confirmed
    assert kept["lines"][0]["line_total"] == money(2100)
    listed = (await shop_client.get(f"/orders?customer_id={customer_id}", headers=boss)).json()
    assert [o["id"] for o in listed["items"]] == [order["id"]]
    # The order view names the customer by id only: nothing personal to drop.
    assert set(kept) == {"id", "customer_id", "status", "lines", "total", "version",
                         "created_at", "updated_at", "rejection_reason"}  # fmt: skip


async def _status(response: Any) -> int:
    return (await response).status_code


async def test_a_rebuilt_order_view_equals_the_projected_one(
    shop_client: Client, shop_settings: Settings, shop_worker: None
) -> None:
    from shop_platform.contexts import CONTEXTS  # noqa: PLC0415
    from shop_platform.projections import rebuild_views, views_of  # noqa: PLC0415

    boss, shopper = await new_admin(shop_client, shop_settings), await new_customer(shop_client)
    sku = await product(shop_client, boss, stock=1)
    made = []
    for quantity in (1, 2):
        body = {"items": [{"sku": sku, "quantity": quantity}]}
        order = (await shop_client.post("/orders", json=body, headers=shopper)).json()
        await shop_client.post(f"/orders/{order['id']}/confirm", headers=shopper)
        made.append(order["id"])
    projected = [await seen(shop_client, shopper, made[0], status="confirmed"),
                 await seen(shop_client, shopper, made[1], status="rejected")]  # fmt: skip
    await rebuild_views(
        shop_settings, CONTEXTS, views_of(CONTEXTS, "order_views"),
        lambda _view, _total: lambda _done: None,
    )  # fmt: skip
    rebuilt = [(await shop_client.get(f"/orders/{o}", headers=shopper)).json() for o in made]
    assert rebuilt == projected
