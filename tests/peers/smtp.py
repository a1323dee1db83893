"""An SMTP sink on loopback (aiosmtpd 1.4): every message any client sends is kept.

API
---
::

    with SmtpSink() as sink:              # listens on 127.0.0.1:<free port>
        sink.port
        sink.messages                      # list of email.message.EmailMessage, in order
        sink.envelopes                     # (mail_from, rcpt_tos) of each
        sink.wait_for(3, timeout=10)       # blocks until 3 messages arrived (or raises)
        sink.refuse_with = (451, "4.3.0 Try later")   # next DATA answered with this
        sink.clear()

``calendar_parts(message)`` returns the text/calendar parts (the method parameter
and the parsed ``icalendar.Calendar``) of a message.
"""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from icalendar import Calendar


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.sink.lock:
            if self.sink.refuse_with is not None:
                code, text = self.sink.refuse_with
                self.sink.refused += 1
                return f"{code} {text}"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            self.sink.messages.append(message)
            self.sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"


class SmtpSink:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.refuse_with: tuple[int, str] | None = None
        self.refused = 0
        # The controller checks readiness by connecting to its port, so it needs a real one.
        self.port = free_port()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, ready_timeout=10)

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def clear(self) -> None:
        with self.lock:
            self.messages.clear()
            self.envelopes.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} messages, the sink has {len(self.messages)}")

    def email_settings(self) -> dict[str, Any]:
        """Django settings that send through this sink."""
        return {
            "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": self.port,
            "EMAIL_USE_TLS": False,
            "EMAIL_USE_SSL": False,
            "EMAIL_HOST_USER": "",
            "EMAIL_HOST_PASSWORD": "",
        }


def calendar_parts(message: EmailMessage) -> list[tuple[str, Calendar]]:
    """(METHOD parameter of the MIME part, parsed calendar) for each text/calendar part."""
    found = []
    for part in message.walk():
        if part.get_content_type() == "text/calendar":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found.append((str(part.get_param("method") or ""), Calendar.from_ical(payload)))
    return found
