"""Fixtures of the trust suite: a helpdesk whose mailbox can both fetch and send."""

from __future__ import annotations

import email
import itertools
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest


@pytest.fixture
def helpdesk(eddymail, support, dovecot, smtp_server, mail_user):
    """The ``support`` channel: IMAP on the test user's mailbox, SMTP on the test server.

    The first connection is made, so every later delivery is new mail.
    """
    smtp_server.add_user(mail_user.login, mail_user.password)
    support("support", "--email", mail_user.address, "--login", mail_user.login,
            "--protocol", "imap", "--host", dovecot.host, "--port", str(dovecot.imaps_port),
            "--security", "ssl", "--ca-file", str(dovecot.pki.ca_file),
            "--smtp-host", smtp_server.host, "--smtp-port", str(smtp_server.port),
            "--smtp-security", "starttls", password=mail_user.password)
    eddymail("fetch", "--no-notify")
    return mail_user


@pytest.fixture
def sending_channel(eddymail, support):
    """A ``help`` channel that can queue notifications (its SMTP server is never reached:
    ``ingest`` does not send)."""
    support("help", "--email", "help@example.test", "--protocol", "none",
            "--smtp-host", "127.0.0.1", "--smtp-port", "9", "--smtp-security", "none")
    return "help"


def letters(smtp_server, count: int) -> list[EmailMessage]:
    """The first ``count`` mails the SMTP server received, parsed."""
    return [email.message_from_bytes(mail.data, policy=default_policy)  # type: ignore[misc]
            for mail in smtp_server.wait_for(count)]


_numbers = itertools.count(1)


def raw_mail(sender: str, subject: str = "Hello", *, body: str = "Hello.\r\n",
             message_id: str | None = None, extra: str = "") -> bytes:
    """A message written byte by byte, for From forms a library would refuse to write."""
    number = next(_numbers)
    message_id = message_id or f"<raw{number}@sender.example>"
    head = (f"From: {sender}\r\nTo: help@example.test\r\nSubject: {subject}\r\n"
            f"Date: Thu, 26 Nov 2026 10:{number % 60:02d}:00 +0000\r\n"
            f"Message-ID: {message_id}\r\n{extra}"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n")
    return head.encode() + body.encode()


