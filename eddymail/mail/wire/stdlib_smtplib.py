"""The one private part of smtplib that eddymail touches: ``SMTP._get_socket``.

Why it must stay: the deadline :class:`~eddymail.mail.wire.endpoint.Watchdog` has to know the
socket a session reads from, from the greeting on, and smtplib has no public way to hand it
over (its ``sock`` attribute is undocumented, ``connect()`` creates the socket and reads the
greeting in one go). ``_get_socket(host, port, timeout)`` is the hook smtplib's own
``SMTP_SSL`` and many third-party wrappers override to create that socket, so
:class:`ReportingSMTP` and :class:`ReportingSMTP_SSL` override it to report the new socket.
TLS sockets (SMTPS, STARTTLS) are reported during their handshake by the context (see
:func:`~eddymail.mail.wire.tls.make_ssl_context`), not here.
``tests/test_stdlib_adapters.py`` fails when a Python release stops calling the hook.
"""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Callable
from typing import Any


class _ReportsSocket:
    """Calls ``report_socket`` with the socket ``connect()`` opened, before the greeting."""

    def __init__(self, *args: Any, report_socket: Callable[[socket.socket], None],
                 **kwargs: Any) -> None:
        self.report_socket = report_socket
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock: socket.socket = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        self.report_socket(sock)
        return sock


class ReportingSMTP(_ReportsSocket, smtplib.SMTP):
    """:class:`smtplib.SMTP` that reports its socket (keyword ``report_socket``)."""


class ReportingSMTP_SSL(_ReportsSocket, smtplib.SMTP_SSL):
    """:class:`smtplib.SMTP_SSL` that reports its socket (keyword ``report_socket``)."""
