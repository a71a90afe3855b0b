"""A real SMTP server for the tests (aiosmtpd, in its own thread), that can also misbehave."""

from __future__ import annotations

import email
import email.policy
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

from aiosmtpd.controller import Controller

from shop_kernel.embedded import free_port

Mode = Literal["accept", "busy", "refuse"]  # busy: 451 (try later); refuse: 550 (never)


@dataclass
class Catcher:
    mode: Mode = "accept"
    messages: list[EmailMessage] = field(default_factory=list[EmailMessage])
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        with self.lock:
            self.attempts += 1
            if self.mode == "busy":
                return "451 4.3.0 Try again later"
            if self.mode == "refuse":
                return "550 5.1.1 No such mailbox"
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(parsed)  # pyright: ignore[reportArgumentType]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


class MailServer:
    def __init__(self) -> None:
        self.catcher = Catcher()
        self.port = free_port()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._controller = Controller(self.catcher, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
