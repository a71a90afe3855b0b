"""Where mails go: an SMTP server (``SHOP_SMTP_URL``), or ``.eml`` files under the data dir.

``smtp://[user:password@]host:port[?starttls=true]`` speaks plain SMTP, upgraded with STARTTLS
when asked; ``smtps://`` speaks TLS from the start. Replies and errors are sorted into
transient (connection refused, timeouts, 4xx: retried) and permanent (5xx, a refused
recipient: recorded as failed).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from shop_kernel.settings import SettingsError
from shop_notifications.application.ports import (
    Accepted,
    Mail,
    PermanentFailure,
    TransientFailure,
)

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    start_tls: bool
    use_tls: bool

    @classmethod
    def from_url(cls, url: str) -> SmtpServer:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise SettingsError("SHOP_SMTP_URL: expected smtp://host:port or smtps://host:port")
        query = parse_qs(parts.query)
        use_tls = parts.scheme == "smtps"
        try:
            port = parts.port or (465 if use_tls else 25)
        except ValueError:
            raise SettingsError("SHOP_SMTP_URL: the port is not a number 1..65535") from None
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            start_tls=not use_tls and query.get("starttls", ["false"])[-1].lower() in _TRUE,
            use_tls=use_tls,
        )


def message(mail: Mail, sender: str) -> EmailMessage:
    built = EmailMessage()
    built["From"] = sender
    built["To"] = mail.to
    built["Subject"] = mail.subject
    built["Message-ID"] = mail.message_id
    built["Date"] = formatdate(usegmt=True)
    built.set_content(mail.text)
    built.add_alternative(mail.html, subtype="html")
    return built


def sender_domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2] if "@" in address else ""
    return domain or "localhost"


class SmtpMailer:
    def __init__(self, server: SmtpServer, sender: str, timeout_s: float) -> None:
        self._server = server
        self._sender = sender
        self._timeout = timeout_s

    async def send(self, mail: Mail, accepted: Accepted) -> None:
        server = self._server
        try:
            Address(addr_spec=mail.to)
        except (ValueError, IndexError) as invalid:
            raise PermanentFailure(f"not a deliverable address: {invalid}") from None
        session = aiosmtplib.SMTP(
            hostname=server.host, port=server.port, username=server.username,
            password=server.password, start_tls=server.start_tls, use_tls=server.use_tls,
            timeout=self._timeout,
        )  # fmt: skip
        try:
            async with session:
                await session.send_message(message(mail, self._sender))
                # Taken: say so before anything else (QUIT is one more round trip).
                await accepted()
        except aiosmtplib.SMTPRecipientsRefused as refused:
            codes = [r.code for r in refused.recipients]
            failure = PermanentFailure if all(c >= 500 for c in codes) else TransientFailure
            raise failure(f"recipient refused: {refused.recipients[0]}") from None
        except aiosmtplib.SMTPResponseException as reply:
            failure = PermanentFailure if reply.code >= 500 else TransientFailure
            raise failure(f"SMTP {reply.code}: {reply.message}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as trouble:
            raise TransientFailure(f"{type(trouble).__name__}: {trouble}") from None


class FileMailer:
    """Each mail as one ``.eml`` file named for its Message-ID (a resend overwrites it)."""

    def __init__(self, folder: Path, sender: str) -> None:
        self._folder = folder
        self._sender = sender

    async def send(self, mail: Mail, accepted: Accepted) -> None:
        await asyncio.to_thread(self._write, mail)
        await accepted()

    def _write(self, mail: Mail) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        name = mail.message_id.strip("<>").replace("@", "_at_").replace("/", "_") + ".eml"
        data = message(mail, self._sender).as_bytes()
        handle, temporary = tempfile.mkstemp(dir=self._folder, suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            Path(temporary).replace(self._folder / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
