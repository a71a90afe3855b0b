"""The notifications context's settings: the mail server, the sender and what mails say
(``SHOP_*`` variables, read with the service's at start-up)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, ClassVar

import msgspec

from shop_kernel.settings import SettingsError, SettingsSection, env_name
from shop_notifications.domain.model import Template

Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_PLACEHOLDER = re.compile(r"{([^{}]*)}")
# The mails whose subject must name the order, and the others.
_ORDER_TEMPLATES = ("order_confirmed", "order_rejected", "order_cancelled")
_UNNAMED_ORDER_TEMPLATES = ("welcome", "password_reset")


class NotificationsSettings(SettingsSection, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url_schemes: ClassVar[Mapping[str, tuple[str, ...]]] = {"smtp_url": ("smtp://", "smtps://")}

    # Unset: mails are written as files under $SHOP_DATA_DIR/mail (development).
    smtp_url: str | None = None
    # The shop's name in mails, the sender, the locale money is written in, how long one SMTP
    # exchange may take, and each subject line ({shop_name}, {order_id} filled in).
    shop_name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)] = "Shop"
    mail_from: Annotated[str, msgspec.Meta(min_length=3, max_length=320)] = "Shop <shop@localhost>"
    mail_locale: Annotated[str, msgspec.Meta(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")] = "en"
    smtp_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 30.0
    mail_subject_welcome: Subject = "Welcome to {shop_name}"
    mail_subject_order_confirmed: Subject = "Your order {order_id} is confirmed"
    mail_subject_order_rejected: Subject = "Your order {order_id} could not be placed"
    mail_subject_order_cancelled: Subject = "Your order {order_id} is cancelled"
    mail_subject_password_reset: Subject = "Reset your {shop_name} password"  # noqa: S105 - a subject

    def __post_init__(self) -> None:
        super().__post_init__()
        for template in _UNNAMED_ORDER_TEMPLATES + _ORDER_TEMPLATES:
            field = f"mail_subject_{template}"
            subject: str = getattr(self, field)
            names = set(_PLACEHOLDER.findall(subject))
            named = template in _ORDER_TEMPLATES
            allowed = {"shop_name", "order_id"} if named else {"shop_name"}
            if not names <= allowed or "\n" in subject or "\r" in subject:
                raise SettingsError(
                    f"{env_name(field)}: one line; placeholders only "
                    f"{', '.join('{' + n + '}' for n in sorted(allowed))}"
                )
            if named and "order_id" not in names:
                raise SettingsError(f"{env_name(field)}: must name the order with {{order_id}}")

    @property
    def subjects(self) -> dict[Template, str]:
        """Each template's subject line."""
        return {
            "welcome": self.mail_subject_welcome,
            "order_confirmed": self.mail_subject_order_confirmed,
            "order_rejected": self.mail_subject_order_rejected,
            "order_cancelled": self.mail_subject_order_cancelled,
            "password_reset": self.mail_subject_password_reset,
        }
