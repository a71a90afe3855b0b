"""The shop's administrators made from outside the API: at start-up and by `shop users`."""

from __future__ import annotations

import punq

from shop_kernel.settings import Settings
from shop_platform.container import build_container
from shop_platform.resources import open_resources
from shop_users.application.accounts import Accounts
from shop_users.domain.model import User


async def ensure_admin(container: punq.Container, email: str, password: str) -> User:
    accounts: Accounts = container.resolve(Accounts)  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return await accounts.ensure_admin(email, password)


async def create_admin(settings: Settings, email: str, password: str) -> User:
    async with open_resources(settings, role="cli") as resources:
        return await ensure_admin(build_container(settings, resources), email, password)
