"""Where a mail server is and how to reach it: host, port, TLS mode, login, timeout, deadline.

``Endpoint`` is what the protocol clients need; ``ProviderHints`` carries what a provider preset
knows about a mailbox (needs an app password, where IMAP access is switched on) so that an
error can say what to do. Both are plain frozen values, built by the caller from a channel.
``Watchdog`` enforces an endpoint's deadline on a live connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from typing import Literal, get_args

from eddymail.errors import ValidationError

Security = Literal["ssl", "starttls", "none"]
SECURITY_MODES: tuple[str, ...] = get_args(Security)

#: The customary ports: (TLS from the first byte, plain with STARTTLS).
USUAL_PORTS: dict[str, tuple[int, int]] = {
    "imap": (993, 143),
    "pop3": (995, 110),
    "smtp": (465, 587),
}
#: How the protocols are named in messages.
PROTOCOL_NAMES = {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}


@dataclass(frozen=True)
class Endpoint:
    """One mail server as a client sees it.

    ``security`` is ``"ssl"`` (TLS from the first byte), ``"starttls"`` (plain greeting, then a
    mandatory upgrade to TLS before the password is sent) or ``"none"`` (an explicit choice, e.g.
    a server on loopback). ``ca_file`` adds a company CA to the system trust store, it does not
    replace it. ``timeout`` bounds every network operation: the connect and each command.
    ``deadline`` (a ``time.monotonic()`` value, or None) bounds the whole session: a server
    that keeps sending a byte now and then never trips ``timeout``, so at the deadline the
    client's :class:`Watchdog` cuts the connection.
    """

    host: str
    port: int
    security: Security
    login: str
    ca_file: str | None = None
    timeout: float = 30.0
    deadline: float | None = None

    def __post_init__(self) -> None:
        if not self.host or any(ch.isspace() for ch in self.host):
            raise ValidationError(f"The mail server name {self.host!r} is not a host name.")
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValidationError(f"The port {self.port!r} is not between 1 and 65535.")
        if self.security not in SECURITY_MODES:
            raise ValidationError(
                f"The security mode {self.security!r} is not one of {', '.join(SECURITY_MODES)}."
            )
        if not self.timeout > 0:
            raise ValidationError(f"The timeout {self.timeout!r} must be a positive number.")

    @property
    def address(self) -> str:
        """``host:port`` as people write it (IPv6 literals in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ProviderHints:
    """What a provider preset knows, so an error can name the likely fix. All optional.

    ``provider`` is a display name ("Gmail"), ``app_password`` says the provider wants an app
    password instead of the mailbox password, ``access_setting`` where IMAP/POP access is
    switched on ("Settings → Forwarding and POP/IMAP → Enable IMAP").
    """

    provider: str | None = None
    app_password: bool = False
    access_setting: str | None = None


#: The default for clients: no provider knowledge.
NO_HINTS = ProviderHints()


class Watchdog:
    """Cuts a connection when its deadline passes, however slowly the server keeps talking.

    Socket timeouts bound each single wait; a server that drips a byte every few seconds (or
    streams endless untagged responses) never trips them and would hold a cron job for ever.
    At ``deadline`` a timer thread shuts down the socket last given to :meth:`watch`, which
    makes a read blocked in the client's thread return end-of-file at once; ``expired`` then
    tells the client why its connection broke. The client calls :meth:`watch` again whenever
    the socket in use changes (a TLS handshake replaces the socket object).
    """

    #: How often, and how many times, an expired watchdog cuts again: the socket object may
    #: be swapped for a new one (TLS wrap) just as the first cut lands.
    RETRY_INTERVAL = 0.05
    RETRIES = 100

    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline
        self.expired = False
        self._socket: socket.socket | None = None
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, sock: socket.socket) -> None:
        """Cut ``sock`` at the deadline: it is the session's socket from now on.

        Starts the timer on the first call (no-op without a deadline or after :meth:`stop`).
        """
        self._socket = sock
        if self.deadline is None or self._thread is not None or self._stopped.is_set():
            return
        self._thread = threading.Thread(target=self._run, name="eddymail-deadline", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The session is over: never cut anything any more. Safe to call twice."""
        self._stopped.set()

    def _run(self) -> None:
        assert self.deadline is not None
        if self._stopped.wait(max(0.0, self.deadline - time.monotonic())):
            return
        self.expired = True
        for _ in range(self.RETRIES):
            sock = self._socket
            if sock is not None:
                # The plain socket method, not SSLSocket.shutdown: that one would also tear
                # down the TLS object under the feet of the thread reading from it. A closed
                # (or, after a TLS wrap, detached) socket object has no descriptor any more,
                # so this can never hit a descriptor number the system gave to someone else.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            if self._stopped.wait(self.RETRY_INTERVAL):
                return
