"""How an account is told to others: its snapshot to whoever may see it (the directory, the
API), its public state to the other contexts (see ``shop_users_contract``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import shop_users_contract as contract
from shop_kernel.domain import DomainEvent
from shop_users.domain import model


def user_snapshot(user: model.User) -> contract.UserSnapshot:
    """The one translation of a (not erased) account into its published shape."""
    if user.email is None or user.name is None:
        raise ValueError(f"account {user.id} is erased: it has no snapshot")
    return contract.UserSnapshot(
        id=user.id,
        email=user.email.value,
        name=user.name.value,
        role=user.role.value,
        is_active=user.is_active,
        created_at=user.created_at,
    )


def _state(event_type: type[contract.UserState]) -> Callable[[Any, Any], contract.UserState]:
    def translate(user: model.User, _event: DomainEvent) -> contract.UserState:
        return event_type(
            aggregate_id=str(user.id),
            aggregate_version=user.version,
            user_id=user.id,
            role=user.role.value,
            is_active=user.is_active,
            created_at=user.created_at,
            erased=user.is_erased,
        )

    return translate


def _reset_requested(user: model.User, _event: DomainEvent) -> contract.PasswordResetRequested:
    return contract.PasswordResetRequested(
        aggregate_id=str(user.id), aggregate_version=user.version, user_id=user.id
    )


TRANSLATIONS: Mapping[type[DomainEvent], Callable[[Any, Any], Any]] = {
    model.Registered: _state(contract.UserRegistered),
    model.ProfileChanged: _state(contract.UserProfileChanged),
    model.RoleChanged: _state(contract.UserRoleChanged),
    model.Deactivated: _state(contract.UserDeactivated),
    model.Reactivated: _state(contract.UserReactivated),
    model.Erased: _state(contract.UserErased),
    model.PasswordResetRequested: _reset_requested,
}
