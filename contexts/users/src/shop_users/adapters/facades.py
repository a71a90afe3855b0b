"""What users offers the other contexts and the platform through its contract's Protocols,
over its own use cases (each call is a unit of work of its own)."""

from __future__ import annotations

import uuid

from shop_kernel.unit_of_work import Transactions
from shop_users.application.accounts import Accounts
from shop_users.application.resets import PasswordResets
from shop_users_contract import Admin


class AccountAdministrators:
    """``Administrators``: the bootstrap admin at start-up, ``shop users create-admin``."""

    def __init__(self, accounts: Accounts, transactions: Transactions) -> None:
        self._accounts = accounts
        self._transactions = transactions

    async def ensure_admin(self, email: str, password: str) -> Admin:
        uow = self._transactions.unit_of_work()
        user = await self._accounts.ensure_admin(uow, email, password)
        return Admin(user_id=user.id, email=str(user.email))


class IssuedResetTokens:
    """``ResetTokens``: a reset mail asks for its token when it is written. The token is
    committed on its own, before the mail leaves (a mail must never carry a token that
    does not exist)."""

    def __init__(self, resets: PasswordResets, transactions: Transactions) -> None:
        self._resets = resets
        self._transactions = transactions

    async def issue(self, user_id: uuid.UUID) -> str | None:
        return await self._resets.issue(self._transactions.unit_of_work(), user_id)
