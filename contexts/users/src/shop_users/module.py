"""Wiring of the users context: what it gives the composition root."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.auth import Authenticator
from shop_kernel.di import Wiring
from shop_kernel.messaging.subscriptions import project
from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule
from shop_kernel.mongo import ReadStore
from shop_kernel.settings import Settings
from shop_kernel.views import ReadView
from shop_users.adapters.facades import AccountAdministrators, IssuedResetTokens
from shop_users.adapters.http import PasswordReset, ResetLimits, SignIn, UsersController
from shop_users.adapters.passwords import Argon2PasswordHasher, load_common_passwords
from shop_users.adapters.sql import (
    SqlPrincipalSource,
    SqlResetTokens,
    SqlUserContacts,
    SqlUserRepository,
    metadata,
)
from shop_users.adapters.tokens import CachedPrincipals, TokenAuthenticator, Tokens
from shop_users.adapters.translations import TRANSLATIONS
from shop_users.adapters.view import (
    COLLECTION,
    UserDirectory,
    UserDirectoryEntry,
    UserDirectoryProjector,
    UserDirectorySource,
)
from shop_users.application.accounts import Accounts
from shop_users.application.resets import PasswordResets
from shop_users.domain.passwords import PasswordPolicy
from shop_users.settings import UsersSettings
from shop_users_contract import (
    LEGACY_USER_EVENTS,
    USER_EVENTS,
    Administrators,
    PasswordResetRequested,
    ResetTokens,
    UserContacts,
)


def register(wiring: Wiring) -> None:
    hasher, policy = Argon2PasswordHasher(), PasswordPolicy(load_common_passwords())
    users = SqlUserRepository()
    accounts = Accounts(users, hasher, policy)
    wiring.provide(Accounts, accounts)
    wiring.provide(Administrators, AccountAdministrators(accounts, wiring.transactions))
    resets = PasswordResets(users, SqlResetTokens(), hasher, policy)
    wiring.provide(PasswordResets, resets)
    wiring.provide(ResetTokens, IssuedResetTokens(resets, wiring.transactions))
    own = wiring.settings.section(UsersSettings)
    wiring.provide(ResetLimits, ResetLimits(wiring.get(Redis), own))
    wiring.provide(UserDirectory, UserDirectory(wiring.get(ReadStore)))
    engine = wiring.get(AsyncEngine)
    tokens = Tokens(wiring.settings)
    wiring.provide(Tokens, tokens)
    principals = CachedPrincipals(SqlPrincipalSource(engine), wiring.get(Redis))
    wiring.provide(Authenticator, TokenAuthenticator(tokens, principals))
    wiring.provide(UserContacts, SqlUserContacts(engine))


SIGN_IN = ("POST", "/auth/token")
REGISTER = ("POST", "/users")


def rate_limits(settings: Settings) -> dict[tuple[str, str], int]:
    """API.md: signing in and registering are limited per client address."""
    return {
        SIGN_IN: settings.section(UsersSettings).rate_limit_login_per_minute,
        REGISTER: settings.section(UsersSettings).rate_limit_register_per_minute,
    }


module = ContextModule(
    name="users",
    settings=UsersSettings,
    migrations=MigrationTarget(
        name="users", metadata=metadata, script_location=Path(__file__).parent / "migrations"
    ),
    register=register,
    provides=[UserContacts, ResetTokens, Administrators, Authenticator],
    route_handlers=[UsersController, SignIn, PasswordReset],
    public_routes=[
        SIGN_IN,
        REGISTER,
        ("POST", "/auth/password-reset"),
        ("POST", "/auth/password-reset/confirm"),
    ],
    rate_limits=rate_limits,
    document_models=[UserDirectoryEntry],
    events=[*USER_EVENTS, *LEGACY_USER_EVENTS, PasswordResetRequested],
    translations=TRANSLATIONS,
    subscriptions=[project(event, UserDirectoryProjector) for event in USER_EVENTS],
    views=[ReadView("user_directory", COLLECTION, UserDirectorySource)],
)
