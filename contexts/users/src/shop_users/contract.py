"""The users context's published language: the only module other contexts may import.

Every event carries the account's whole public state after the change (event-carried state),
so a subscriber or a view never has to ask back, and the newest version always wins. An erased
account's events carry no email and no name.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from shop_kernel.messaging.events import IntegrationEvent

RoleName = Literal["customer", "admin"]


class UserState(IntegrationEvent, frozen=True, kw_only=True):
    user_id: uuid.UUID
    email: str | None
    name: str | None
    role: RoleName
    is_active: bool
    created_at: datetime
    erased: bool = False


class UserRegistered(UserState, frozen=True, kw_only=True, tag="users.UserRegistered.v1"):
    pass


class UserProfileChanged(UserState, frozen=True, kw_only=True, tag="users.UserProfileChanged.v1"):
    pass


class UserRoleChanged(UserState, frozen=True, kw_only=True, tag="users.UserRoleChanged.v1"):
    pass


class UserDeactivated(UserState, frozen=True, kw_only=True, tag="users.UserDeactivated.v1"):
    pass


class UserReactivated(UserState, frozen=True, kw_only=True, tag="users.UserReactivated.v1"):
    pass


class UserErased(UserState, frozen=True, kw_only=True, tag="users.UserErased.v1"):
    pass


USER_EVENTS: tuple[type[UserState], ...] = (
    UserRegistered,
    UserProfileChanged,
    UserRoleChanged,
    UserDeactivated,
    UserReactivated,
    UserErased,
)
