"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, keeping what it receives."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    # The message as it came over the wire (what the line limit and encodings apply to).
    raw: bytes = b""


@dataclass
class Collector:
    received: list[Received] = field(default_factory=list)
    refuse_rcpt: set[str] = field(default_factory=set)
    # Refuse every recipient as a relay refuses a client it does not know (554 5.7.1).
    refuse_relay: bool = False
    # Refuse every sender (553), as a server refuses a clinic whose settings are wrong.
    refuse_sender: bool = False
    # The reply to every message at the end of DATA instead of accepting it, e.g.
    # "554 5.7.1 ..." (a policy refusal: SPF, relaying from this address) or "554 5.6.0 ...".
    refuse_data: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Hold the server's reply at one stage ("RCPT": before it has the message; "DATA": it has
    # the message but has not accepted it yet; "QUIT": after it accepted it) until
    # ``release()``, as a slow server would; ``stalled`` is set there.
    stall_at: str | None = None
    stalled: threading.Event = field(default_factory=threading.Event)
    _released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.stall_at = None
        self._released.set()

    async def _hold(self, stage: str) -> None:
        if self.stall_at == stage:
            self.stalled.set()
            while not self._released.is_set():
                await asyncio.sleep(0.02)

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802
        await self._hold("QUIT")
        return "221 Bye"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        if self.refuse_sender:
            return "553 5.7.1 Sender address rejected: not owned by user"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        await self._hold("RCPT")
        if address in self.refuse_rcpt:
            return "550 5.1.1 No such user"
        if self.refuse_relay:
            return "554 5.7.1 Relay access denied"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        await self._hold("DATA")
        if self.refuse_data:
            return self.refuse_data
        message = message_from_bytes(envelope.original_content, policy=default)
        with self.lock:
            self.received.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    message,
                    envelope.original_content,
                )
            )
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} emails, got {len(self.received)}")


class SmtpServer:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.collector = Collector()
        self.controller: Controller | None = None  # made on start: it owns an event loop
        self.running = False

    def start(self) -> SmtpServer:
        if not self.running:
            self.controller = Controller(self.collector, hostname="127.0.0.1", port=self.port)
            self.controller.start()
            self.running = True
        return self

    def stop(self) -> None:
        if self.running and self.controller is not None:
            self.controller.stop()
            self.running = False

    @property
    def received(self) -> list[Received]:
        return self.collector.received
