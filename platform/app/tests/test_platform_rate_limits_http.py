"""The limited routes of the whole app when Redis, which counts their attempts, is down:
503 problem+json with ``Retry-After`` (a store outage), never an unlimited door."""

from __future__ import annotations

from litestar.testing import AsyncTestClient

from shop_devkit.app_plugin import TEST_PASSWORD, OwnRedis
from shop_kernel.settings import Settings
from shop_platform.app import create_app
from shop_users.settings import UsersSettings


async def test_a_redis_outage_makes_the_limited_routes_503_not_unlimited(
    shop_settings: Settings, own_redis: OwnRedis
) -> None:
    settings = shop_settings.with_overrides(redis_url=own_redis.url)
    login = {"email": "nobody@example.com", "password": TEST_PASSWORD}
    registration = {"email": "new@example.com", "password": TEST_PASSWORD, "name": "N"}
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
        before = await client.post("/auth/token", json=login)
        own_redis.stop()
        refused = [
            await client.post("/auth/token", json=login),
            await client.post("/users", json=registration),
        ]

    assert before.status_code == 401
    assert before.headers["ratelimit-limit"] == str(
        settings.section(UsersSettings).rate_limit_login_per_minute
    )
    for response in refused:
        assert response.status_code == 503
        assert response.headers["content-type"].startswith("application/problem+json")
        assert int(response.headers["retry-after"]) >= 1
