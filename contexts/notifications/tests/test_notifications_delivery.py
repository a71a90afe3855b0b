"""A delivery's rules, the SMTP URL, and the .eml files of the embedded default."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shop_kernel.domain import Conflict
from shop_kernel.settings import SettingsError
from shop_notifications.adapters.compose import TemplateComposer, message_id
from shop_notifications.adapters.mail import FileMailer, SmtpServer
from shop_notifications.application.ports import Recipient
from shop_notifications.domain.model import ERASED, TEMPLATES, Delivery, DeliveryInFlight

LEASE = timedelta(seconds=60)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_an_attempt_holds_a_lease_so_a_second_delivery_does_not_send_alongside() -> None:
    delivery = Delivery.of(uuid.uuid4(), "welcome", uuid.uuid4())
    delivery.attempt("a@example.com", lease=LEASE, now=NOW)
    with pytest.raises(DeliveryInFlight):
        delivery.attempt("a@example.com", lease=LEASE, now=NOW + timedelta(seconds=59))
    # A crash left it pending with one attempt: after the lease the next retry goes ahead.
    delivery.attempt("a@example.com", lease=LEASE, now=NOW + timedelta(seconds=61))
    assert (delivery.status, delivery.attempts) == ("pending", 2)


def test_a_transient_failure_frees_the_lease_and_a_settled_delivery_never_sends_again() -> None:
    delivery = Delivery.of(uuid.uuid4(), "order_confirmed", uuid.uuid4())
    delivery.attempt("a@example.com", lease=LEASE, now=NOW)
    delivery.failed_for_now("451 try later")
    delivery.attempt("a@example.com", lease=LEASE, now=NOW)  # at once, no lease left
    delivery.sent(NOW)
    assert (delivery.status, delivery.sent_at, delivery.last_error) == ("sent", NOW, None)
    with pytest.raises(Conflict):
        delivery.attempt("a@example.com", lease=LEASE, now=NOW + timedelta(days=1))


def test_forgetting_the_recipient_drops_a_pending_mail_and_keeps_a_sent_ones_outcome() -> None:
    pending, sent = (Delivery.of(uuid.uuid4(), "welcome", uuid.uuid4()) for _ in range(2))
    for delivery in (pending, sent):
        delivery.attempt("a@example.com", lease=LEASE, now=NOW)
    sent.sent(NOW)
    pending.forget_recipient()
    sent.forget_recipient()
    assert (pending.status, pending.recipient, pending.last_error) == ("failed", None, ERASED)
    assert (sent.status, sent.recipient) == ("sent", None)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail:1025", ("mail", 1025, None, None, False, False)),
        ("smtp://u%40x:p%3Aw@mail:587?starttls=true", ("mail", 587, "u@x", "p:w", True, False)),
        ("smtp://mail:587?starttls=1", ("mail", 587, None, None, True, False)),
        ("smtps://mail", ("mail", 465, None, None, False, True)),
    ],
)
def test_the_smtp_url_names_server_credentials_and_tls(
    url: str, expected: tuple[object, ...]
) -> None:
    server = SmtpServer.from_url(url)
    got = (server.host, server.port, server.username, server.password, server.start_tls,
           server.use_tls)  # fmt: skip
    assert got == expected


@pytest.mark.parametrize("url", ["smtp://", "http://mail:25", "smtp://mail:99999"])
def test_a_bad_smtp_url_is_refused_naming_the_setting(url: str) -> None:
    with pytest.raises(SettingsError, match="SHOP_SMTP_URL"):
        SmtpServer.from_url(url)


async def test_without_an_smtp_server_mails_are_eml_files_named_by_message_id(
    tmp_path: Path,
) -> None:
    composer = TemplateComposer(
        shop_name="Shop", sender="Shop <shop@example.org>", locale="de",
        subjects={"welcome": "Hi", "order_confirmed": "Order {order_id}",
                  "order_rejected": "x {order_id}", "order_cancelled": "y {order_id}"},
    )  # fmt: skip
    delivery = Delivery.of(uuid.uuid4(), "order_confirmed", uuid.uuid4())
    delivery.attempt("b@example.com", lease=LEASE)
    recipient = Recipient(delivery.user_id, "b@example.com", "Bea")
    line = {"sku": "A-1", "name": "Tasse", "quantity": 1, "unit_price": {"amount": 123456,
            "currency": "EUR"}, "line_total": {"amount": 123456, "currency": "EUR"}}  # fmt: skip
    facts = {"order_id": "o-1", "lines": [line], "total": {"amount": 123456, "currency": "EUR"}}
    mail = composer.compose(delivery, recipient, facts)
    assert mail.message_id == message_id(delivery.event_id, "order_confirmed", "example.org")
    assert "1.234,56\xa0€" in mail.text  # German writing of EUR 1234.56
    mailer = FileMailer(tmp_path / "mail", "Shop <shop@example.org>")
    taken: list[str] = []

    async def accepted() -> None:
        taken.append(mail.message_id)
        assert list((tmp_path / "mail").glob("*.eml"))  # said only once the file is there

    await mailer.send(mail, accepted)
    await mailer.send(mail, accepted)  # a resend replaces the same file
    assert taken == [mail.message_id] * 2
    [file] = list((tmp_path / "mail").iterdir())
    parsed = email.message_from_bytes(file.read_bytes(), policy=email.policy.default)
    assert parsed["Message-ID"] == mail.message_id
    assert parsed["Subject"] == "Order o-1"
    assert file.suffix == ".eml"


def test_yen_have_no_minor_units() -> None:
    subjects = dict.fromkeys(TEMPLATES, "")
    composer = TemplateComposer(
        shop_name="Shop", sender="shop@example.org", locale="en", subjects=subjects
    )
    assert composer.money({"amount": 1500, "currency": "JPY"}) == "¥1,500"
    assert composer.money({"amount": 1500, "currency": "EUR"}) == "€15.00"


def test_the_templates_and_statuses_are_the_same_in_the_domain_and_the_contract() -> None:
    from typing import get_args  # noqa: PLC0415

    import shop_notifications_contract as contract  # noqa: PLC0415
    from shop_notifications.domain import model  # noqa: PLC0415

    assert get_args(model.Template) == get_args(contract.Template)
    assert get_args(model.Status) == get_args(contract.DeliveryStatus)
