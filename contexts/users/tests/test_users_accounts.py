"""The users' use cases against in-memory fakes of their ports."""

from __future__ import annotations

import copy
import uuid
from typing import Any, Self

import pytest

from shop_kernel.domain import ConcurrentChange
from shop_users.application.accounts import (
    AccountDeactivated,
    Accounts,
    AdminEmailTaken,
    InvalidCredentials,
)
from shop_users.domain.model import (
    EmailAddress,
    EmailAlreadyRegistered,
    InvalidField,
    Role,
    User,
    UserNotFound,
    WrongPassword,
)
from shop_users.domain.passwords import PasswordPolicy


class FakeHasher:
    """Reversible 'hashes' that say which parameters made them, so rehash can be seen."""

    def __init__(self, params: str = "v2") -> None:
        self.params = params
        self.dummy_verifications = 0
        self.store: Store | None = None
        self.transactions_open_while_hashing: list[int] = []

    def _note(self) -> None:
        if self.store is not None:
            self.transactions_open_while_hashing.append(self.store.open_transactions)

    async def hash(self, password: str) -> str:
        self._note()
        return f"{self.params}:{password}"

    async def verify(self, password_hash: str, password: str) -> bool:
        self._note()
        return password_hash.split(":", 1)[1] == password

    def needs_rehash(self, password_hash: str) -> bool:
        return not password_hash.startswith(f"{self.params}:")

    async def verify_dummy(self, password: str) -> None:
        self.dummy_verifications += 1


class Store:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, User] = {}
        self.commits = 0
        self.open_transactions = 0


class FakeUnitOfWork:
    """A transaction over the store: what it changes is staged, and kept only on commit."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.staged: dict[uuid.UUID, User] = {}

    async def __aenter__(self) -> Self:
        self.store.open_transactions += 1
        self.staged = dict(self.store.rows)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.store.open_transactions -= 1

    async def commit(self) -> None:
        self.store.rows = self.staged
        self.store.commits += 1


class FakeUsers:
    """The repository port on what the unit of work it is given has staged."""

    async def get(self, uow: Any, user_id: uuid.UUID) -> User | None:
        return _loaded(uow.staged.get(user_id))

    async def get_by_email(self, uow: Any, email: EmailAddress) -> User | None:
        return _loaded(next((u for u in uow.staged.values() if u.email == email), None))

    async def add(self, uow: Any, user: User) -> None:
        if any(u.email == user.email for u in uow.staged.values()):
            raise EmailAlreadyRegistered
        user.saved_as(1)
        uow.staged[user.id] = copy.deepcopy(user)

    async def save(self, uow: Any, user: User) -> None:
        if uow.staged[user.id].version != user.version:
            raise ConcurrentChange
        user.saved_as(user.version + 1)
        uow.staged[user.id] = copy.deepcopy(user)


def _loaded(stored: User | None) -> User | None:
    """A fresh copy, as a store hands it out: no events pending."""
    if stored is None:
        return None
    user = copy.deepcopy(stored)
    user.pull_events()
    return user


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def hasher() -> FakeHasher:
    return FakeHasher()


class UseCases:
    """``Accounts`` with each call given a unit of work of its own, as a request's is."""

    def __init__(self, accounts: Any, store: Store) -> None:
        self._accounts = accounts
        self._store = store

    def __getattr__(self, name: str) -> Any:
        use_case = getattr(self._accounts, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await use_case(FakeUnitOfWork(self._store), *args, **kwargs)

        return call


@pytest.fixture
def accounts(store: Store, hasher: FakeHasher) -> Any:
    hasher.store = store
    policy = PasswordPolicy(frozenset({"password123"}))
    return UseCases(Accounts(FakeUsers(), hasher, policy), store)


async def test_registering_twice_with_another_case_is_a_conflict(accounts: Any) -> None:
    await accounts.register("Ada@Example.com", "correct horse", "Ada")
    with pytest.raises(EmailAlreadyRegistered):
        await accounts.register("ada@EXAMPLE.com", "correct horse", "Ada again")


async def test_a_common_password_is_refused_before_anything_is_stored(
    accounts: Any, store: Store
) -> None:
    with pytest.raises(InvalidField):
        await accounts.register("ada@example.com", "Password123", "Ada")
    assert store.rows == {}


async def test_unknown_email_and_wrong_password_get_the_same_refusal(
    accounts: Any, hasher: FakeHasher
) -> None:
    await accounts.register("ada@example.com", "correct horse", "Ada")
    with pytest.raises(InvalidCredentials) as unknown:
        await accounts.authenticate("nobody@example.com", "correct horse")
    with pytest.raises(InvalidCredentials) as wrong:
        await accounts.authenticate("ada@example.com", "wrong horse!")
    assert str(unknown.value) == str(wrong.value)
    assert hasher.dummy_verifications == 1  # the unknown email still cost a verification


async def test_a_deactivated_account_cannot_sign_in(accounts: Any) -> None:
    user = await accounts.register("ada@example.com", "correct horse", "Ada")
    await accounts.administer(user.id, role=None, is_active=False)
    with pytest.raises(AccountDeactivated):
        await accounts.authenticate("ada@example.com", "correct horse")


async def test_signing_in_rehashes_a_password_hashed_with_old_parameters(
    accounts: Any, hasher: FakeHasher, store: Store
) -> None:
    user = await accounts.register("ada@example.com", "correct horse", "Ada")
    hasher.params = "v3"
    await accounts.authenticate("ada@example.com", "correct horse")
    assert store.rows[user.id].password_hash == "v3:correct horse"
    assert store.rows[user.id].token_generation == user.token_generation  # tokens stay valid


async def test_changing_the_password_needs_the_current_one(accounts: Any) -> None:
    user = await accounts.register("ada@example.com", "correct horse", "Ada")
    with pytest.raises(WrongPassword):
        await accounts.change_password(user.id, "not it at all", "battery staple")
    await accounts.change_password(user.id, "correct horse", "battery staple")
    await accounts.authenticate("ada@example.com", "battery staple")


async def test_an_email_change_rechecks_uniqueness(accounts: Any) -> None:
    await accounts.register("ada@example.com", "correct horse", "Ada")
    bob = await accounts.register("bob@example.com", "correct horse", "Bob")
    with pytest.raises(EmailAlreadyRegistered):
        await accounts.change_profile(bob.id, name=None, email="ADA@example.com")


async def test_an_erased_account_is_gone_and_its_email_free_again(accounts: Any) -> None:
    user = await accounts.register("ada@example.com", "correct horse", "Ada")
    await accounts.erase(user.id)
    with pytest.raises(UserNotFound):
        await accounts.profile(user.id)
    with pytest.raises(InvalidCredentials):
        await accounts.authenticate("ada@example.com", "correct horse")
    await accounts.register("ada@example.com", "correct horse", "Ada, new")


async def test_the_bootstrap_admin_is_made_once_and_promoted_if_needed(
    accounts: Any, store: Store
) -> None:
    first = await accounts.ensure_admin("root@example.com", "correct horse")
    again = await accounts.ensure_admin("root@example.com", "another horse")
    assert first.id == again.id
    assert len(store.rows) == 1
    assert store.rows[first.id].role is Role.ADMIN
    customer = await accounts.register("cus@example.com", "correct horse", "Cus")
    with pytest.raises(AdminEmailTaken):  # whoever registered it first stays a customer
        await accounts.ensure_admin("cus@example.com", "another horse")
    assert store.rows[customer.id].role is Role.CUSTOMER
    await accounts.ensure_admin("cus@example.com", "correct horse")  # its owner's password
    assert store.rows[customer.id].role is Role.ADMIN


async def test_an_admin_change_that_changes_nothing_stores_nothing(
    accounts: Any, store: Store
) -> None:
    user = await accounts.register("ada@example.com", "correct horse", "Ada")
    commits = store.commits
    await accounts.administer(user.id, role=Role.CUSTOMER, is_active=True)
    assert store.commits == commits
    assert store.rows[user.id].version == user.version


async def test_no_transaction_is_open_while_a_password_is_hashed_or_verified(
    accounts: Any, hasher: FakeHasher
) -> None:
    user = await accounts.register("ada@example.com", "correct horse", "Ada")
    hasher.params = "v3"  # sign-in will verify, then rehash
    await accounts.authenticate("ada@example.com", "correct horse")
    await accounts.change_password(user.id, "correct horse", "battery staple")
    assert len(hasher.transactions_open_while_hashing) >= 5
    assert set(hasher.transactions_open_while_hashing) == {0}
