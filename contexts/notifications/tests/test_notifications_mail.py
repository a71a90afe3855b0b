"""Emails that follow what happens, through the whole app and worker to a real SMTP server."""

from __future__ import annotations

import os
import socket
import uuid
from email.message import EmailMessage
from typing import Any

import psycopg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text

from shop_devkit.app_plugin import TEST_PASSWORD, eventually, new_admin, sign_in
from shop_devkit.mail import MailServer
from shop_kernel.settings import Settings
from shop_kernel.sql import create_engine, libpq_url
from shop_kernel.unit_of_work import Transactions
from shop_notifications.application.mailing import Mailing

Client = AsyncTestClient[Litestar]


@pytest.fixture
def shop_settings(shop_settings: Settings, mail_server: MailServer) -> Settings:
    """The session's stores, mail over SMTP to the test server, and quick retries."""
    return shop_settings.with_overrides(
        smtp_url=mail_server.url, event_min_backoff_ms=50,
        shop_name="Test Shop", mail_from="Test Shop <shop@example.com>",
    )  # fmt: skip


async def register(client: Client, name: str = "Ada") -> tuple[str, dict[str, str]]:
    email = f"mail-{uuid.uuid4().hex[:10]}@example.com"
    made = await client.post(
        "/users", json={"email": email, "password": TEST_PASSWORD, "name": name}
    )
    assert made.status_code == 201, made.text
    return email, await sign_in(client, email)


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    return str(text.get_content()), str(html.get_content())


async def arrived(mail_server: MailServer, to: str, count: int = 1) -> list[EmailMessage]:
    async def check() -> bool:
        return len(mail_server.catcher.to(to)) >= count

    # After an outage a retry may wait up to the outage backoff's cap (30 s).
    await eventually(check, f"{count} email(s) to {to}", within=90)
    return mail_server.catcher.to(to)


async def recorded_sent(client: Client, admin: dict[str, str], email: str) -> dict[str, Any]:
    """The one delivery to ``email``, once its send is recorded."""

    async def sent() -> bool:
        entries = await log_of(client, admin, email)
        return len(entries) == 1 and entries[0]["status"] == "sent"

    await eventually(sent, f"the delivery to {email} recorded as sent")
    return (await log_of(client, admin, email))[0]


async def log_of(client: Client, admin: dict[str, str], recipient: str) -> list[dict[str, Any]]:
    page = await client.get(f"/notifications?recipient={recipient}", headers=admin)
    assert page.status_code == 200, page.text
    return page.json()["items"]


async def test_a_new_customer_is_welcomed_once_with_both_parts_and_a_stable_message_id(
    shop_client: Client, shop_settings: Settings, shop_worker: None, mail_server: MailServer
) -> None:
    admin = await new_admin(shop_client, shop_settings)
    email, _ = await register(shop_client)
    [welcome] = await arrived(mail_server, email)
    await recorded_sent(shop_client, admin, email)
    assert welcome["From"] == "Test Shop <shop@example.com>"
    assert welcome["Subject"] == "Welcome to Test Shop"
    text, html = parts(welcome)
    assert "Hello Ada" in text
    assert email in text
    assert "<p>Hello Ada,</p>" in html
    message_id = welcome["Message-ID"]
    assert message_id.startswith("<")
    assert message_id.endswith("@example.com>")
    [entry] = await log_of(shop_client, admin, email)
    assert (entry["template"], entry["status"], entry["attempts"]) == ("welcome", "sent", 1)
    assert entry["sent_at"] is not None
    # The same event handled again (as after a crash before its inbox row): nothing resent.
    mailing: Mailing = shop_client.app.state.container.resolve(Mailing)
    uow = shop_client.app.state.container.resolve(Transactions).unit_of_work()
    user_id = (await shop_client.get("/users", headers=admin, params={"q": email})).json()
    status = await mailing.send(
        uow, uuid.UUID(entry["event_id"]), "welcome", uuid.UUID(user_id["items"][0]["id"]), {}
    )
    assert status == "sent"
    assert len(mail_server.catcher.to(email)) == 1


async def test_order_emails_carry_the_lines_totals_and_the_order_id(
    shop_client: Client, shop_settings: Settings, shop_worker: None, mail_server: MailServer
) -> None:
    admin = await new_admin(shop_client, shop_settings)
    email, shopper = await register(shop_client, "Grace")
    skus = []
    for price, stock in ((1250, 10), (399, 1)):
        sku = f"MAIL-{uuid.uuid4().hex[:8].upper()}"
        body = {"sku": sku, "name": f"Cup {sku}", "price": {"amount": price, "currency": "EUR"},
                "stock": stock}  # fmt: skip
        assert (await shop_client.post("/products", json=body, headers=admin)).status_code == 201
        skus.append(sku)
    mug, scarce = skus

    async def place(items: list[dict[str, Any]]) -> str:
        order = (await shop_client.post("/orders", json={"items": items}, headers=shopper)).json()
        await shop_client.post(f"/orders/{order['id']}/confirm", headers=shopper)
        return order["id"]

    confirmed = await place([{"sku": mug, "quantity": 2}])
    rejected = await place([{"sku": mug, "quantity": 1}, {"sku": scarce, "quantity": 3}])
    await arrived(mail_server, email, 3)  # welcome, confirmed, rejected
    cancelled = await shop_client.post(f"/orders/{confirmed}/cancel", headers=shopper)
    assert cancelled.status_code == 200
    messages = {m["Subject"]: m for m in await arrived(mail_server, email, 4)}
    confirmation = messages[f"Your order {confirmed} is confirmed"]
    text, html = parts(confirmation)
    assert confirmed in text
    assert confirmed in html
    assert f"2 x Cup {mug} ({mug}) at €12.50: €25.00" in text
    assert "Total: €25.00" in text
    assert "<td>€25.00</td>" in html
    rejection = messages[f"Your order {rejected} could not be placed"]
    text, _ = parts(rejection)
    assert f"not enough stock of {scarce}." in text
    assert "Total: €24.47" in text  # 12.50 + 3 x 3.99
    cancellation = messages[f"Your order {confirmed} is cancelled"]
    assert confirmed in parts(cancellation)[0]
    templates = sorted(e["template"] for e in await log_of(shop_client, admin, email))
    assert templates == ["order_cancelled", "order_confirmed", "order_rejected", "welcome"]


async def test_a_draft_given_up_sends_nothing(
    shop_client: Client, shop_settings: Settings, shop_worker: None, mail_server: MailServer
) -> None:
    admin = await new_admin(shop_client, shop_settings)
    email, shopper = await register(shop_client)
    await arrived(mail_server, email)
    order = (await shop_client.post("/orders", headers=shopper)).json()
    assert (
        await shop_client.post(f"/orders/{order['id']}/cancel", headers=shopper)
    ).status_code == 200
    engine = create_engine(shop_settings)
    handled = text(
        "SELECT count(*) FROM messaging.inbox i JOIN messaging.outbox o USING (event_id) "
        "WHERE i.subscriber = 'notifications.OrderMail' AND o.aggregate_id = :order"
    )

    async def cancellation_handled() -> bool:
        async with engine.connect() as conn:
            return (await conn.execute(handled, {"order": order["id"]})).scalar_one() == 1

    try:
        await eventually(cancellation_handled, "the cancellation handled by notifications")
    finally:
        await engine.dispose()
    assert [e["template"] for e in await log_of(shop_client, admin, email)] == ["welcome"]


async def test_a_server_that_is_busy_for_a_while_gets_the_email_once_later(
    shop_client: Client, shop_settings: Settings, shop_worker: None, mail_server: MailServer
) -> None:
    admin = await new_admin(shop_client, shop_settings)
    mail_server.catcher.mode = "busy"
    email, _ = await register(shop_client)

    async def tried_twice() -> bool:
        # Refused by the server itself: the log counts an attempt before the mail leaves,
        # so it may show 2 while the second is still on its way (and could then succeed).
        entries = await log_of(shop_client, admin, email)
        return bool(entries) and mail_server.catcher.attempts_to(email) >= 2

    # The subscriber's circuit paces the retries of a server that said "later": generous.
    await eventually(tried_twice, "two attempts refused with 451", within=90)
    assert mail_server.catcher.to(email) == []
    mail_server.catcher.mode = "accept"
    await arrived(mail_server, email)
    entry = await recorded_sent(shop_client, admin, email)
    assert entry["attempts"] >= 3
    assert len(mail_server.catcher.to(email)) == 1


async def test_a_server_that_is_down_for_a_while_gets_the_email_once_later(
    shop_client: Client, shop_settings: Settings, shop_worker: None, mail_server: MailServer
) -> None:
    admin = await new_admin(shop_client, shop_settings)
    mail_server.stop()
    email, _ = await register(shop_client)

    async def tried() -> bool:
        entries = await log_of(shop_client, admin, email)
        return bool(entries) and entries[0]["attempts"] >= 1

    # The subscriber's circuit paces attempts at a server that is down: generous.
    await eventually(tried, "an attempt refused by a closed port", within=90)
    mail_server.start()
    await arrived(mail_server, email)
    await recorded_sent(shop_client, admin, email)
    assert len(mail_server.catcher.to(email)) == 1


async def test_a_permanent_refusal_is_recorded_as_failed_and_not_retried(
    shop_client: Client, shop_settings: Settings, shop_worker: None, mail_server: MailServer
) -> None:
    admin = await new_admin(shop_client, shop_settings)
    mail_server.catcher.mode = "refuse"
    email, _ = await register(shop_client)

    async def failed() -> bool:
        entries = await log_of(shop_client, admin, email)
        return bool(entries) and entries[0]["status"] == "failed"

    await eventually(failed, "the welcome recorded as failed")
    mail_server.catcher.mode = "accept"
    other, _ = await register(shop_client)
    await arrived(mail_server, other)  # the worker went on; the refused one was not retried
    # Counted per recipient: the admin's own welcome may still be on its way.
    assert mail_server.catcher.attempts_to(email) == 1
    [entry] = await log_of(shop_client, admin, email)
    assert entry["attempts"] == 1


async def test_a_name_with_markup_is_escaped_in_html_and_kept_in_text(
    shop_client: Client, shop_worker: None, mail_server: MailServer
) -> None:
    email, _ = await register(shop_client, '<script>alert("x")</script> & Co')
    [welcome] = await arrived(mail_server, email)
    text, html = parts(welcome)
    assert '<script>alert("x")</script> & Co' in text
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co" in html


async def test_an_erased_customer_gets_nothing_and_leaves_no_address_in_the_log(
    shop_client: Client, shop_settings: Settings, shop_worker: None, mail_server: MailServer
) -> None:
    admin = await new_admin(shop_client, shop_settings)
    mail_server.catcher.mode = "busy"  # the welcome stays pending, retried
    email, who = await register(shop_client)

    async def pending() -> bool:
        entries = await log_of(shop_client, admin, email)
        return bool(entries) and entries[0]["attempts"] >= 1

    await eventually(pending, "the welcome pending")
    assert (await shop_client.delete("/users/me", headers=who)).status_code == 204

    async def dropped() -> bool:
        everything = (await shop_client.get("/notifications?limit=100", headers=admin)).json()
        mine = [e for e in everything["items"] if e["recipient"] is None]
        return any(e["status"] == "failed" and e["template"] == "welcome" for e in mine)

    await eventually(dropped, "the pending welcome dropped without its address")
    mail_server.catcher.mode = "accept"
    later, _ = await register(shop_client)
    await arrived(mail_server, later)
    assert mail_server.catcher.to(email) == []
    assert await log_of(shop_client, admin, email) == []


async def test_only_admins_read_the_delivery_log(
    shop_client: Client, shop_settings: Settings
) -> None:
    admin = await new_admin(shop_client, shop_settings)
    _, customer = await register(shop_client)
    assert (await shop_client.get("/notifications")).status_code == 401
    assert (await shop_client.get("/notifications", headers=customer)).status_code == 403
    page = await shop_client.get("/notifications?limit=1", headers=admin)
    assert page.status_code == 200
    for bad in ("?limit=0", "?limit=101", "?cursor=nope"):
        response = await shop_client.get(f"/notifications{bad}", headers=admin)
        assert response.status_code in {400, 422}, bad


async def test_a_recipient_filter_with_control_characters_is_refused_naming_it(
    shop_client: Client, shop_settings: Settings
) -> None:
    admin = await new_admin(shop_client, shop_settings)
    response = await shop_client.get("/notifications?recipient=a%16b", headers=admin)
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["recipient"]
    schema = (await shop_client.get("/schema/openapi.json")).json()
    parameters = schema["paths"]["/notifications"]["get"]["parameters"]
    recipient = next(p for p in parameters if p["name"] == "recipient")
    assert recipient["schema"]["pattern"] == r"^[^\x00-\x1f\x7f-\x9f]*$"


async def attempts_of(settings: Settings, email: str) -> list[tuple[int, str, str | None]]:
    """(number, process, outcome) of every attempt to send to ``email``."""
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text(
                "SELECT a.number, a.process, a.outcome FROM notifications.delivery_attempts a"
                " JOIN notifications.deliveries d ON d.id = a.delivery_id"
                " WHERE d.recipient = :email ORDER BY a.number"
            ), {"email": email})  # fmt: skip
            return [(int(n), str(p), o) for n, p, o in rows]
    finally:
        await engine.dispose()


async def test_sent_is_recorded_the_moment_the_server_takes_the_mail_before_goodbye(
    shop_client: Client, shop_settings: Settings, shop_worker: None, mail_server: MailServer
) -> None:
    admin = await new_admin(shop_client, shop_settings)
    email = f"goodbye-{uuid.uuid4().hex[:10]}@example.com"
    at_goodbye: list[list[str]] = []  # the mail's delivery log entry when QUIT arrives

    def look() -> None:
        if at_goodbye or not mail_server.catcher.to(email):
            return  # another mail's session (the admin's welcome), or ours already seen
        with psycopg.connect(libpq_url(shop_settings.database_url or "")) as conn:
            rows = conn.execute(
                "SELECT status FROM notifications.deliveries WHERE recipient = %s", (email,)
            ).fetchall()
        at_goodbye.append([status for (status,) in rows])

    mail_server.catcher.on_goodbye = look
    made = await shop_client.post(
        "/users", json={"email": email, "password": TEST_PASSWORD, "name": "Bye"}
    )
    assert made.status_code == 201, made.text

    async def said_goodbye() -> bool:
        return bool(at_goodbye) and bool(mail_server.catcher.to(email))

    await eventually(said_goodbye, "the mail taken and the session's QUIT", within=60)
    # Recorded while the SMTP session was still open: before the client even said goodbye.
    assert at_goodbye[0] == ["sent"]
    [entry] = await log_of(shop_client, admin, email)
    assert entry["status"] == "sent"


async def test_every_attempt_is_logged_with_its_process_and_how_it_ended(
    shop_client: Client, shop_settings: Settings, shop_worker: None, mail_server: MailServer
) -> None:
    mail_server.catcher.mode = "busy"
    email, _ = await register(shop_client)

    async def refused_once() -> bool:
        return [o for _, _, o in await attempts_of(shop_settings, email)] == ["later"]

    await eventually(refused_once, "a first attempt put off by the server", within=60)
    mail_server.catcher.mode = "accept"
    await arrived(mail_server, email)

    async def sent() -> bool:
        logged = await attempts_of(shop_settings, email)
        return bool(logged) and logged[-1][2] == "sent"

    await eventually(sent, "the attempt that went through, logged", within=60)
    logged = await attempts_of(shop_settings, email)
    assert [n for n, _, _ in logged] == list(range(1, len(logged) + 1))
    assert {o for _, _, o in logged[:-1]} == {"later"}
    assert {p for _, p, _ in logged} == {f"{socket.gethostname()}:{os.getpid()}"}
