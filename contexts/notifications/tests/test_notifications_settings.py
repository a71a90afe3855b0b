"""The notifications' own settings: read with the service's, each refusal naming its variable."""

from __future__ import annotations

import pytest

from shop_kernel.settings import Settings, SettingsError
from shop_notifications.settings import NotificationsSettings


def read(environ: dict[str, str]) -> NotificationsSettings:
    return Settings.from_env(environ, sections=[NotificationsSettings]).section(
        NotificationsSettings
    )


def test_subjects_and_the_mail_server_are_read_with_the_service_s_settings() -> None:
    own = read({
        "SHOP_SMTP_URL": "smtps://mail.example.com",
        "SHOP_MAIL_SUBJECT_ORDER_CONFIRMED": "{shop_name}: order {order_id} is on its way",
    })  # fmt: skip
    assert own.smtp_url == "smtps://mail.example.com"
    assert own.subjects["order_confirmed"] == "{shop_name}: order {order_id} is on its way"
    assert own.subjects["welcome"] == "Welcome to {shop_name}"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SHOP_SMTP_URL": "http://mail:25"}, "SHOP_SMTP_URL: must start with one of"),
        ({"SHOP_MAIL_SUBJECT_ORDER_REJECTED": "Sorry"}, "must name the order with {order_id}"),
        ({"SHOP_MAIL_SUBJECT_WELCOME": "Hi {order_id}"}, "placeholders only {shop_name}"),
        ({"SHOP_MAIL_SUBJECT_WELCOME": "Hi\nthere"}, "SHOP_MAIL_SUBJECT_WELCOME: one line"),
        ({"SHOP_SMTP_TIMEOUT_S": "0"}, "SHOP_SMTP_TIMEOUT_S:"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_variable(
    environ: dict[str, str], expected: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        read(environ)
    assert expected in str(refused.value)
    assert str(refused.value).startswith(next(iter(environ)))
