"""The users context's settings: access tokens and the limits on signing in, registering and
password resets (``SHOP_*`` variables, read with the service's at start-up)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from shop_kernel.settings import SettingsSection


class UsersSettings(SettingsSection, frozen=True, kw_only=True, forbid_unknown_fields=True):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"jwt_secret"})

    # Signing key of access tokens; unset in development, where one is generated and kept
    # under the data dir (never a constant in the code).
    jwt_secret: Annotated[str, msgspec.Meta(min_length=32, max_length=512)] | None = None
    # Lifetime of an access token, in seconds.
    access_token_ttl_s: Annotated[int, msgspec.Meta(ge=60, le=86_400)] = 900
    # Requests per minute and client address to POST /auth/token and to POST /users.
    rate_limit_login_per_minute: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 10
    rate_limit_register_per_minute: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 10
    # Password reset requests (and confirmations) per minute and client address, and
    # requests per hour and email.
    rate_limit_password_reset_per_minute: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 5
    rate_limit_password_reset_per_email_per_hour: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 3
