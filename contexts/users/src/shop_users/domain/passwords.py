"""What makes a password acceptable: length only, and not one everybody else uses (ASVS 5)."""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass

from shop_users.domain.model import InvalidField

PASSWORD_MIN = 8
PASSWORD_MAX = 128


@dataclass(frozen=True)
class PasswordPolicy:
    """No composition rules: 8..128 characters, not on the list of the most common ones."""

    common: Set[str]

    def check(self, password: str, field_name: str = "password") -> None:
        if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
            raise InvalidField(
                field_name, f"a password is {PASSWORD_MIN}..{PASSWORD_MAX} characters"
            )
        if "\x00" in password:
            raise InvalidField(field_name, "a password cannot contain a null character")
        if password.lower() in self.common:
            raise InvalidField(field_name, "this password is too common; choose another")
