"""Every route x {anonymous, the owner, another customer, an admin}, as API.md says.

The matrix is checked against the app's own route table: a route added without a row (or a
row whose route is gone) fails the first test, so no route escapes the review of who may call
it.
"""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from route_matrix import MATRIX, ROLES, Role, World, route_table, shown

from shop_devkit.app_plugin import eventually
from shop_kernel.settings import Settings

Client = AsyncTestClient[Litestar]


def test_every_route_has_a_row_in_the_matrix(shop_app: Litestar) -> None:
    routes = route_table(shop_app)
    assert routes - MATRIX.keys() == set(), "routes nobody decided who may call"
    assert MATRIX.keys() - routes == set(), "rows for routes that no longer exist"


@pytest.mark.parametrize(("method", "route"), sorted(MATRIX), ids=str)
async def test_who_may_call_each_route(
    shop_client: Client, shop_settings: Settings, shop_worker: None, method: str, route: str
) -> None:
    rule = MATRIX[(method, route)]
    world = World(shop_client, shop_settings)
    await world.enter()
    outcomes: dict[Role, int] = {}
    for role in ROLES:
        targets = await world.targets()
        if rule.visible is not None:
            view = rule.visible(targets)
            await eventually(shown(shop_client, view, world.headers["owner"]), f"{view} shown")
        body = rule.body(targets)
        response = await shop_client.request(
            method, rule.path(targets), json=body, headers=world.headers[role]
        )
        outcomes[role] = response.status_code
        if response.status_code >= 400 and not rule.html:
            assert response.headers["content-type"].startswith("application/problem+json")
    assert outcomes == rule.expected
