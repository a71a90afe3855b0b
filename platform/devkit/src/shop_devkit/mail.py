"""A real SMTP server for tests: what it received, and misbehaviour on purpose."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

# busy: 451 (try later); refuse: 550 (never); slow: accepts after `slow_s` seconds;
# refuse_recipient: 550 to RCPT, naming the address as real servers do.
MailMode = Literal["accept", "busy", "refuse", "slow", "refuse_recipient"]


@dataclass
class MailCatcher:
    """What a test SMTP server received; ``mode`` makes it misbehave on purpose."""

    mode: MailMode = "accept"
    messages: list[EmailMessage] = field(default_factory=list[EmailMessage])
    attempts: int = 0
    tried: list[str] = field(default_factory=list[str])  # the recipients of every attempt
    slow_s: float = 3.0
    goodbye_s: float = 0.0  # how long the server takes to answer QUIT
    saying_goodbye: bool = False  # a QUIT is being answered right now
    # Called (in the server's thread) when a QUIT arrives, before it is answered: a test sees
    # the world as it is at that moment, however busy the machine.
    on_goodbye: Callable[[], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        if self.on_goodbye is not None:
            await asyncio.to_thread(self.on_goodbye)
        if self.goodbye_s:
            self.saying_goodbye = True
            try:
                await asyncio.sleep(self.goodbye_s)
            finally:
                self.saying_goodbye = False
        return "221 Bye"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's name
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.mode == "refuse_recipient":
            with self.lock:
                self.attempts += 1
                self.tried.append(address.lower())
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        with self.lock:
            self.tried.extend(address.lower() for address in envelope.rcpt_tos)
        if self.mode == "slow":
            with self.lock:
                self.attempts += 1
            await asyncio.sleep(self.slow_s)
            received: Any = email.message_from_bytes(envelope.content, policy=email.policy.default)
            with self.lock:
                self.messages.append(received)
            return "250 Message accepted for delivery"
        with self.lock:
            self.attempts += 1
            if self.mode == "busy":
                return "451 4.3.0 Try again later"
            if self.mode == "refuse":
                return "550 5.1.1 No such mailbox"
            parsed: Any = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(parsed)
        return "250 Message accepted for delivery"

    def attempts_to(self, address: str) -> int:
        with self.lock:
            return self.tried.count(address.lower())

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


class MailServer:
    """A real SMTP server (aiosmtpd, in a thread of its own) on a free local port."""

    def __init__(self) -> None:
        from shop_devkit.embedded import free_port  # noqa: PLC0415

        self.catcher = MailCatcher()
        self.port = free_port()
        self._controller: Any = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        from aiosmtpd.controller import Controller  # noqa: PLC0415 - a test dependency

        self._controller = Controller(self.catcher, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
