"""Who may call each route (API.md) and how to reach it, shared by the security tests.

Each role acts on targets made fresh for it (an order, a product), so what one role changes
does not decide the next one's answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from litestar import Litestar
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from shop_devkit.app_plugin import TEST_PASSWORD, new_admin, sign_in
from shop_kernel.settings import Settings

Client = AsyncTestClient[Litestar]
Role = Literal["anonymous", "other", "admin", "owner"]
ROLES: tuple[Role, ...] = ("anonymous", "other", "admin", "owner")  # the owner acts last


@dataclass
class Targets:
    """What one role acts on: the owner's account, a fresh order of theirs, a product."""

    owner_id: str
    owner_email: str
    order_id: str
    sku: str


@dataclass(frozen=True)
class Rule:
    expected: dict[Role, int]
    path: Callable[[Targets], str] = lambda _t: ""
    body: Callable[[Targets], Any] = lambda _t: None
    # A read of a view: wait until the view shows the role's fresh target there.
    visible: Callable[[Targets], str] | None = None
    html: bool = False  # its errors are pages for people, not problem details


def everyone(status: int) -> dict[Role, int]:
    return dict.fromkeys(ROLES, status)


def signed_in(status: int, anonymous: int = 401) -> dict[Role, int]:
    return {"anonymous": anonymous, "other": status, "admin": status, "owner": status}


def admins(status: int) -> dict[Role, int]:
    return {"anonymous": 401, "other": 403, "admin": status, "owner": 403}


def new_product(_t: Targets) -> dict[str, Any]:
    sku = f"MTX-{uuid.uuid4().hex[:8].upper()}"
    return {"sku": sku, "name": "Matrix", "price": {"amount": 100, "currency": "EUR"}, "stock": 1}


def new_account(_t: Targets) -> dict[str, str]:
    return {"email": f"mtx-{uuid.uuid4().hex[:10]}@example.com", "password": TEST_PASSWORD,
            "name": "M"}  # fmt: skip


ORDER = "/orders/{order_id:str}"
MATRIX: dict[tuple[str, str], Rule] = {
    ("GET", "/health/live"): Rule(everyone(200), lambda _t: "/health/live"),
    ("GET", "/health/ready"): Rule(everyone(200), lambda _t: "/health/ready"),
    ("GET", "/metrics"): Rule(everyone(200), lambda _t: "/metrics"),
    ("GET", "/schema"): Rule(everyone(200), lambda _t: "/schema"),
    ("GET", "/schema/openapi.json"): Rule(everyone(200), lambda _t: "/schema/openapi.json"),
    ("GET", "/schema/openapi.yaml"): Rule(everyone(200), lambda _t: "/schema/openapi.yaml"),
    # Litestar's page for an unknown schema page: a 404 for everyone (rendered as HTML).
    ("GET", "/schema/{path:str}"): Rule(everyone(404), lambda _t: "/schema/nothing", html=True),
    ("GET", "/schema/oauth2-redirect.html"): Rule(
        everyone(200), lambda _t: "/schema/oauth2-redirect.html"
    ),
    ("POST", "/users"): Rule(everyone(201), lambda _t: "/users", new_account),
    ("POST", "/auth/token"): Rule(
        everyone(200),
        lambda _t: "/auth/token",
        lambda t: {"email": t.owner_email, "password": TEST_PASSWORD},
    ),
    ("POST", "/auth/password-reset"): Rule(
        everyone(202), lambda _t: "/auth/password-reset", lambda t: {"email": t.owner_email}
    ),
    # Anyone may try a token; one nobody was sent is refused alike for every caller.
    ("POST", "/auth/password-reset/confirm"): Rule(
        everyone(400),
        lambda _t: "/auth/password-reset/confirm",
        lambda _t: {"token": "x" * 43, "new_password": TEST_PASSWORD + "!"},
    ),
    ("GET", "/users/me"): Rule(signed_in(200), lambda _t: "/users/me"),
    ("PATCH", "/users/me"): Rule(signed_in(200), lambda _t: "/users/me", lambda _t: {"name": "N"}),
    ("DELETE", "/users/me"): Rule(signed_in(204), lambda _t: "/users/me"),
    ("POST", "/users/me/password"): Rule(
        signed_in(204),
        lambda _t: "/users/me/password",
        lambda _t: {"current_password": TEST_PASSWORD, "new_password": TEST_PASSWORD + "!"},
    ),
    ("GET", "/users"): Rule(admins(200), lambda _t: "/users"),
    ("GET", "/users/{user_id:uuid}"): Rule(
        {"anonymous": 401, "other": 404, "admin": 200, "owner": 200},
        lambda t: f"/users/{t.owner_id}",
    ),
    ("PATCH", "/users/{user_id:uuid}"): Rule(
        admins(200), lambda t: f"/users/{t.owner_id}", lambda _t: {"is_active": True}
    ),
    ("GET", "/products"): Rule(everyone(200), lambda _t: "/products"),
    ("GET", "/products/{sku:str}"): Rule(
        everyone(200), lambda t: f"/products/{t.sku}", visible=lambda t: f"/products/{t.sku}"
    ),
    ("POST", "/products"): Rule(admins(201), lambda _t: "/products", new_product),
    ("PATCH", "/products/{sku:str}"): Rule(
        admins(200), lambda t: f"/products/{t.sku}", lambda _t: {"name": "Renamed"}
    ),
    ("POST", "/products/{sku:str}/stock"): Rule(
        admins(200),
        lambda t: f"/products/{t.sku}/stock",
        lambda _t: {"adjustment": 1, "reason": "count"},
    ),
    ("POST", "/orders"): Rule(signed_in(201), lambda _t: "/orders"),
    ("GET", "/orders"): Rule(signed_in(200), lambda _t: "/orders"),
    ("GET", ORDER): Rule(
        {"anonymous": 401, "other": 404, "admin": 200, "owner": 200},
        lambda t: f"/orders/{t.order_id}",
        visible=lambda t: f"/orders/{t.order_id}",
    ),
    ("POST", ORDER + "/items"): Rule(
        {"anonymous": 401, "other": 404, "admin": 404, "owner": 200},
        lambda t: f"/orders/{t.order_id}/items",
        lambda t: {"sku": t.sku, "quantity": 1},
    ),
    ("PUT", ORDER + "/items/{sku:str}"): Rule(
        {"anonymous": 401, "other": 404, "admin": 404, "owner": 200},
        lambda t: f"/orders/{t.order_id}/items/{t.sku}",
        lambda _t: {"quantity": 2},
    ),
    ("DELETE", ORDER + "/items/{sku:str}"): Rule(
        {"anonymous": 401, "other": 404, "admin": 404, "owner": 200},
        lambda t: f"/orders/{t.order_id}/items/{t.sku}",
    ),
    ("POST", ORDER + "/confirm"): Rule(
        {"anonymous": 401, "other": 404, "admin": 404, "owner": 202},
        lambda t: f"/orders/{t.order_id}/confirm",
    ),
    ("POST", ORDER + "/cancel"): Rule(
        {"anonymous": 401, "other": 404, "admin": 200, "owner": 200},
        lambda t: f"/orders/{t.order_id}/cancel",
    ),
    ("GET", "/notifications"): Rule(admins(200), lambda _t: "/notifications"),
}


def route_table(app: Litestar) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
        for method in handler.http_methods
        if method not in {"OPTIONS", "HEAD"}
    }


class World:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.headers: dict[Role, dict[str, str]] = {"anonymous": {}}

    async def enter(self) -> None:
        self.headers["admin"] = await new_admin(self.client, self.settings)
        for role in ("owner", "other"):
            email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
            made = await self.client.post(
                "/users", json={"email": email, "password": TEST_PASSWORD, "name": role}
            )
            assert made.status_code == 201, made.text
            if role == "owner":
                self.owner_id, self.owner_email = made.json()["id"], email
            self.headers[role] = await sign_in(self.client, email)

    async def targets(self) -> Targets:
        product = new_product(Targets("", "", "", ""))
        made = await self.client.post("/products", json=product, headers=self.headers["admin"])
        assert made.status_code == 201, made.text
        items = [{"sku": product["sku"], "quantity": 1}]
        order = await self.client.post(
            "/orders", json={"items": items}, headers=self.headers["owner"]
        )
        assert order.status_code == 201, order.text
        return Targets(self.owner_id, self.owner_email, order.json()["id"], product["sku"])


def shown(
    client: httpx.AsyncClient, path: str, headers: dict[str, str]
) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await client.get(path, headers=headers)).status_code == 200

    return check
