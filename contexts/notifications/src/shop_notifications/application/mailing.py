"""Sending the email an event calls for: once, recorded before and after, never to the erased.

Each send runs in transactions of its own (its subscriptions are declared so: not the event
delivery's), given as the unit of work: the attempt is committed before the mail leaves and
the outcome after, so a crash in between is visible and retried.
A transient failure is recorded and raised again, so the backbone retries the event with
back-off; a permanent one is recorded as ``failed`` and the event counts as handled.

The guarantee is at least once, with one stable Message-ID per event and template: a mail
goes out twice only if the process dies after the mail server took it and before "sent" is
recorded. That window is one database statement long: the record is made ready (a
connection checked out) before the send, and written the moment the server answers, before
the SMTP session is even closed. Each attempt is logged with the process that made it, so an
attempt that was cut off (and any copy it may have caused) is visible in the delivery log.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, Literal

from shop_kernel.log import get_logger
from shop_kernel.unit_of_work import UnitOfWork
from shop_notifications.application.ports import (
    Composer,
    Deliveries,
    Mailer,
    PermanentFailure,
    Recipients,
    SentRecords,
    TransientFailure,
)
from shop_notifications.domain.model import NOT_WANTED, Delivery, Template, redacted

log = get_logger(__name__)

# What a mail says: given, or made when it is written (None: no longer wanted).
Facts = Mapping[str, Any] | Callable[[], Awaitable[Mapping[str, Any] | None]]


class Mailing:
    def __init__(
        self,
        deliveries: Deliveries,
        composer: Composer,
        mailer: Mailer,
        sent_records: SentRecords,
        recipients: Recipients,
        *,
        lease: timedelta,
    ) -> None:
        self._deliveries = deliveries
        self._recipients = recipients
        self._composer = composer
        self._mailer = mailer
        self._sent_records = sent_records
        self._lease = lease

    async def forget(self, uow: UnitOfWork, user_id: uuid.UUID) -> None:
        """An erased account: its address and what an error said about it leave the delivery
        log, and what was not sent yet never will be."""
        async with uow:
            for delivery in await self._deliveries.of_user(uow, user_id):
                delivery.forget_recipient()
                await self._deliveries.save(uow, delivery)
            await uow.commit()

    async def send(
        self,
        uow: UnitOfWork,
        event_id: uuid.UUID,
        template: Template,
        user_id: uuid.UUID,
        facts: Facts,
    ) -> str:
        """Send the mail ``template`` for the event to the user; return the delivery's status.

        ``facts`` may be made only when the mail is written (a secret that must exist in the
        mail alone, such as a reset token): then it is asked for at each attempt, after the
        attempt is recorded, and None drops the mail."""
        async with uow:
            delivery = await self._deliveries.claim(uow, event_id, template, user_id)
            if delivery.settled:
                return delivery.status  # sent (or failed) before: never again
            recipient = await self._recipients.get(user_id)
            if recipient is None:  # erased: nobody to write to
                delivery.forget_recipient()
                await self._deliveries.save(uow, delivery)
                await uow.commit()
                return delivery.status
            delivery.attempt(recipient.email, lease=self._lease)
            await self._deliveries.save(uow, delivery)
            await self._deliveries.log_attempt(uow, delivery)
            await uow.commit()
        if callable(facts):
            made = await facts()
            if made is None:
                await self._settle(uow, delivery, "failed", NOT_WANTED)
                return "failed"
            facts = made
        mail = self._composer.compose(delivery, recipient, facts)
        taken = False
        async with self._sent_records.ready() as record_sent:

            async def accepted() -> None:
                nonlocal taken
                taken = True
                await record_sent(delivery)

            try:
                await self._mailer.send(mail, accepted)
            except PermanentFailure as failure:
                error = redacted(str(failure), recipient.email)
                await self._settle(uow, delivery, "failed", error)
                log.warning(
                    "email refused for good", delivery_id=str(delivery.id), template=template,
                    error=error,
                )  # fmt: skip
                return "failed"
            except TransientFailure as failure:
                if taken:  # taken, then the goodbye failed: the mail is out, recorded as sent
                    await self._forget_if_erased_meanwhile(uow, delivery.user_id)
                    return "sent"
                error = redacted(str(failure), recipient.email)
                await self._settle(uow, delivery, "later", error)
                log.info(
                    "email not sent yet; retried later", delivery_id=str(delivery.id),
                    template=template, attempts=delivery.attempts, error=error,
                )  # fmt: skip
                raise
        await self._forget_if_erased_meanwhile(uow, delivery.user_id)
        return "sent"

    async def _forget_if_erased_meanwhile(self, uow: UnitOfWork, user_id: uuid.UUID) -> None:
        """An erasure that landed while this attempt was being recorded found no address in
        the log to forget yet: forget it now."""
        if await self._recipients.get(user_id) is None:
            await self.forget(uow, user_id)

    async def _settle(
        self, uow: UnitOfWork, attempted: Delivery, ended: Literal["failed", "later"], error: str
    ) -> None:
        """Record how an attempt that was not taken ended: failed for good, or to be tried
        again later (``error`` says why)."""
        async with uow:
            delivery = await self._deliveries.lock(uow, attempted.id)
            await self._deliveries.log_outcome(uow, attempted, ended)
            if not delivery.dropped_for_erasure:  # erased while being sent: the erasure stands
                if ended == "failed":
                    delivery.failed(error)
                else:
                    delivery.failed_for_now(error)
                await self._deliveries.save(uow, delivery)
            await uow.commit()
        await self._forget_if_erased_meanwhile(uow, attempted.user_id)
