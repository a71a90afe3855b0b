"""The shop's administrators made from outside the API: at start-up and by `shop users`.

The users context makes them (its ``Administrators``, published in its contract); the
platform only asks.
"""

from __future__ import annotations

import punq

from shop_kernel.di import resolved
from shop_kernel.settings import Settings
from shop_platform.container import build_container
from shop_platform.resources import open_resources
from shop_users_contract import Admin, Administrators


async def ensure_admin(container: punq.Container, email: str, password: str) -> Admin:
    return await resolved(container, Administrators).ensure_admin(email, password)


async def create_admin(settings: Settings, email: str, password: str) -> Admin:
    async with open_resources(settings, role="cli") as resources:
        return await ensure_admin(build_container(settings, resources), email, password)
