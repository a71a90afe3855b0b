"""Users' ``Administrators`` for the composition root, over the accounts use cases."""

from __future__ import annotations

from shop_users.application.accounts import Accounts
from shop_users_contract import Admin


class AccountAdministrators:
    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    async def ensure_admin(self, email: str, password: str) -> Admin:
        user = await self._accounts.ensure_admin(email, password)
        return Admin(user_id=user.id, email=str(user.email))
