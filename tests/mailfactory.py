"""Building test messages as raw bytes, the way mail clients write them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

_counter = itertools.count(1)


def make_mail(
    subject: str = "Printer on fire",
    *,
    sender: str = "Anna Customer <anna@customer.example>",
    to: str = "help@example.test",
    body: str = "Hello, the printer is on fire.\n",
    cc: str | None = None,
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """A plain-text message; every call gets a unique Message-ID unless one is given."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime(2026, 11, 27, 10, 0, next(_counter) % 60,
                                               tzinfo=UTC))
    message["Message-ID"] = message_id or make_msgid(domain="customer.example")
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes()


def poison_mail() -> bytes:
    """A message the parser must refuse: a thousand nested multiparts."""
    depth = 1000
    head = b"From: bomb@evil.example\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"
    parts = [head + b'Content-Type: multipart/mixed; boundary="b0"\r\n\r\n']
    for level in range(1, depth):
        parts.append(f'--b{level - 1}\r\nContent-Type: multipart/mixed; boundary="b{level}"'
                      "\r\n\r\n".encode())
    parts.append(f"--b{depth - 1}\r\nContent-Type: text/plain\r\n\r\nboom\r\n".encode())
    return b"".join(parts)
