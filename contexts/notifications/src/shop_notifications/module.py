"""Wiring of the notifications context: what it gives the composition root."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from shop_kernel.di import Wiring
from shop_kernel.messaging.subscriptions import subscribe
from shop_kernel.migrations import MigrationTarget
from shop_kernel.modules import ContextModule
from shop_kernel.settings import Settings
from shop_notifications.adapters.compose import TemplateComposer
from shop_notifications.adapters.http import NotificationsController
from shop_notifications.adapters.mail import FileMailer, SmtpMailer, SmtpServer
from shop_notifications.adapters.sql import DeliveryLog, SqlDeliveries, SqlSentRecords, metadata
from shop_notifications.adapters.subscriptions import (
    ForgetRecipient,
    OrderMail,
    PasswordResetMail,
    ResetLinks,
    UsersRecipients,
    Welcome,
)
from shop_notifications.application.mailing import Mailing
from shop_notifications.application.ports import Mailer
from shop_notifications.settings import NotificationsSettings
from shop_orders_contract import OrderCancelled, OrderConfirmed, OrderRejected
from shop_users_contract import (
    PasswordResetRequested,
    ResetTokens,
    UserContacts,
    UserErased,
    UserRegistered,
)


def mailer(settings: Settings) -> Mailer:
    """SMTP when ``SHOP_SMTP_URL`` is set; else ``.eml`` files under ``$SHOP_DATA_DIR/mail``."""
    own = settings.section(NotificationsSettings)
    if own.smtp_url is None:
        return FileMailer(settings.data_path / "mail", own.mail_from)
    server = SmtpServer.from_url(own.smtp_url)
    return SmtpMailer(server, own.mail_from, own.smtp_timeout_s)


def register(wiring: Wiring) -> None:
    settings = wiring.settings
    own = settings.section(NotificationsSettings)
    composer = TemplateComposer(
        shop_name=own.shop_name, sender=own.mail_from, locale=own.mail_locale,
        subjects=own.subjects,
    )  # fmt: skip
    # A second delivery of the same event waits this long for a send in flight to finish.
    lease = timedelta(seconds=own.smtp_timeout_s * 2)
    engine = wiring.get(AsyncEngine)
    wiring.provide(
        Mailing,
        Mailing(
            SqlDeliveries(),
            composer,
            mailer(settings),
            SqlSentRecords(engine),
            UsersRecipients(wiring.get(UserContacts)),
            lease=lease,
        ),
    )
    wiring.provide(DeliveryLog, DeliveryLog(engine))
    wiring.provide(ResetLinks, ResetLinks(settings.public_url))


module = ContextModule(
    name="notifications",
    settings=NotificationsSettings,
    migrations=MigrationTarget(
        name="notifications",
        metadata=metadata,
        script_location=Path(__file__).parent / "migrations",
    ),
    register=register,
    needs=[UserContacts, ResetTokens],  # the address of a mail, the token of a reset link
    route_handlers=[NotificationsController],
    # A mail leaves the system before a delivery could roll it back: each mail's subscription
    # records its attempts and outcomes in transactions of its own.
    subscriptions=[
        subscribe(UserRegistered, Welcome, transaction="own"),
        subscribe(UserErased, ForgetRecipient),
        subscribe(OrderConfirmed, OrderMail, transaction="own"),
        subscribe(OrderRejected, OrderMail, transaction="own"),
        subscribe(OrderCancelled, OrderMail, transaction="own"),
        subscribe(PasswordResetRequested, PasswordResetMail, transaction="own"),
    ],
)
