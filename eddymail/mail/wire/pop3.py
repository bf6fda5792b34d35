"""POP3 over verified TLS with poplib: list by UIDL, retrieve, delete.

POP3 deletes are transactional: ``DELE`` only marks a message, and the marks are committed by
``QUIT``. A session that ends any other way (an error, a crash, a cut connection) rolls them
back, so the context manager sends QUIT only when the ``with`` block finished cleanly — the
durable-first rule in protocol form.
"""

from __future__ import annotations

import contextlib
import poplib
import re
from collections.abc import Callable
from types import TracebackType
from typing import Any

from eddymail.errors import MailServerError, ValidationError
from eddymail.mail.wire.diagnose import (
    ResponseTooLarge,
    Secret,
    classify,
    deadline_reached,
    starttls_unavailable,
)
from eddymail.mail.wire.endpoint import NO_HINTS, Endpoint, ProviderHints, Watchdog
from eddymail.mail.wire.tls import make_ssl_context

_FAILURES = (poplib.error_proto, OSError, EOFError, ValueError, UnicodeError)
# RFC 1939 allows 1-70 printable characters; a little slack for servers that exceed it.
_UNIQUE_ID = re.compile(rb"[\x21-\x7e]{1,128}")
#: The most bytes one multi-line answer (RETR, TOP, UIDL, LIST) may have unless told
#: otherwise; poplib collects the lines in memory, and a server may send without end.
DEFAULT_MAX_RESPONSE = 256 * 1024 * 1024


class _LineLimit:
    """poplib reads lines with a 2048-byte limit, a module global, and answers without one.

    Real mail has longer lines (HTML from some mailers, unwrapped base64), and a message poplib
    cannot read would block the mailbox for ever; so our subclasses read up to ``max_line``.
    A multi-line answer longer than ``max_response`` bytes ends the session instead of
    filling the memory (a server's LIST may say 2 KB and its RETR send gigabytes). A
    :class:`~eddymail.mail.wire.endpoint.Watchdog` watches the socket from the first byte on.
    ``_getline`` and ``_getlongresp`` are poplib's private hooks, kept behaviour for
    behaviour except the limits.
    """

    max_line = 16 * 1024 * 1024
    max_response = DEFAULT_MAX_RESPONSE
    file: Any

    def __init__(
        self,
        *args: Any,
        watchdog: Watchdog | None = None,
        max_response: int = DEFAULT_MAX_RESPONSE,
        **kwargs: Any,
    ) -> None:
        self.max_response = max_response
        if watchdog is not None:
            watchdog.watch(lambda: getattr(self, "sock", None))
        try:
            super().__init__(*args, **kwargs)
        except BaseException:
            # poplib leaves the socket open when the greeting fails (or never comes); the
            # traceback would keep it alive and the server waiting.
            for name in ("file", "sock"):
                with contextlib.suppress(Exception):
                    getattr(self, name).close()
            raise

    def _getline(self) -> tuple[bytes, int]:
        line: bytes = self.file.readline(self.max_line + 1)
        if len(line) > self.max_line:
            raise poplib.error_proto(f"-ERR line longer than {self.max_line} bytes")
        if not line:
            raise poplib.error_proto("-ERR EOF")
        octets = len(line)
        if line[-2:] == b"\r\n":
            return line[:-2], octets
        if line[:1] == b"\r":
            return line[1:-1], octets
        return line[:-1], octets

    def _getlongresp(self) -> tuple[bytes, list[bytes], int]:
        resp: bytes = self._getresp()  # type: ignore[attr-defined]
        lines: list[bytes] = []
        octets = 0
        line, count = self._getline()
        while line != b".":
            if line.startswith(b".."):
                count -= 1
                line = line[1:]
            octets += count
            if octets > self.max_response:
                raise _AnswerTooLarge(None, self.max_response, "multi-line answer")
            lines.append(line)
            line, count = self._getline()
        return resp, lines, octets


class _AnswerTooLarge(ResponseTooLarge, poplib.error_proto):
    """A refused answer; the rest of it is still on the way, so the session is over."""


class _Pop3(_LineLimit, poplib.POP3):
    pass


class _Pop3SSL(_LineLimit, poplib.POP3_SSL):
    def _create_socket(self, timeout: float) -> Any:
        # poplib.POP3_SSL wraps the socket before it lets go of it; exposing the plain one
        # first lets the watchdog cut a TLS handshake that never ends.
        sock = poplib.POP3._create_socket(self, timeout)
        self.sock = sock
        return self.context.wrap_socket(sock, server_hostname=self.host)


class Pop3Client:
    """One logged-in POP3 session; use it as a context manager.

    Leaving the ``with`` block normally sends QUIT, which commits the deletions made with
    :meth:`delete`; leaving it with an exception closes the connection without QUIT, so the
    server keeps every message. A multi-line answer over ``max_response`` bytes ends the
    session before it fills the memory; ``endpoint.deadline`` ends it when the time is up.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        password: str,
        hints: ProviderHints = NO_HINTS,
        *,
        max_response: int = DEFAULT_MAX_RESPONSE,
    ) -> None:
        self.endpoint = endpoint
        self.hints = hints
        self.max_response = max_response
        self._secret = Secret(password)
        del password  # only the Secret wrapper stays in this frame (tracebacks with locals)
        self._pop: poplib.POP3 | None = None
        self._watchdog = Watchdog(endpoint.deadline)
        self._open()

    # -- session -------------------------------------------------------------------------

    def _open(self) -> None:
        endpoint = self.endpoint
        context = make_ssl_context(endpoint.ca_file) if endpoint.security != "none" else None
        try:
            limits = {"watchdog": self._watchdog, "max_response": self.max_response}
            if endpoint.security == "ssl":
                self._pop = _Pop3SSL(
                    endpoint.host, endpoint.port, timeout=endpoint.timeout, context=context,
                    **limits,
                )
            else:
                self._pop = _Pop3(endpoint.host, endpoint.port, timeout=endpoint.timeout,
                                  **limits)
        except _FAILURES as exc:
            self._watchdog.stop()
            raise self._error(exc, "pop3 connect") from exc
        try:
            if endpoint.security == "starttls":
                self._starttls(context)
            self._login()
        except BaseException:
            self._close_socket()
            raise

    def _starttls(self, context: Any) -> None:
        pop = self._connection
        try:
            capabilities = pop.capa()
        except poplib.error_proto:
            capabilities = {}  # no CAPA at all: then no STLS either
        except _FAILURES as exc:
            raise self._error(exc, "pop3 starttls") from exc
        if "STLS" not in capabilities:
            raise starttls_unavailable(
                "pop3", self.endpoint, "CAPA " + " ".join(sorted(capabilities)), offered=False
            )
        try:
            pop.stls(context=context)
        except _FAILURES as exc:
            raise self._error(exc, "pop3 starttls") from exc

    def _login(self) -> None:
        login, password = self.endpoint.login, self._secret.reveal()
        if any(char in login + password for char in "\r\n\0"):
            # USER/PASS are single lines; a line break would inject a command.
            raise ValidationError("The POP3 login or password contains a line break or NUL.")
        failure: MailServerError | None = None
        try:
            self._connection.user(login)
            self._connection.pass_(password)
        except _FAILURES as exc:
            failure = self._error(exc, "pop3 login")
        if failure is not None:
            raise failure  # outside the except block: no chain into frames holding the password

    def quit(self) -> None:
        """Send QUIT, which commits the deletions, and close the connection."""
        pop = self._connection
        try:
            pop.quit()
        except _FAILURES as exc:
            raise self._error(exc, "pop3 quit") from exc
        finally:
            self._close_socket()

    def close(self) -> None:
        """Close without QUIT: the server forgets the deletions of this session. Never raises."""
        self._close_socket()

    def _close_socket(self) -> None:
        pop, self._pop = self._pop, None
        if pop is not None:
            with contextlib.suppress(Exception):  # closing a dead socket may fail; nothing to do
                pop.close()
        self._watchdog.stop()

    def __enter__(self) -> Pop3Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None and self._pop is not None:
            self.quit()
        else:
            self.close()

    # -- mailbox ---------------------------------------------------------------------------

    def stat(self) -> tuple[int, int]:
        """``(message count, total size in bytes)``."""
        count, size = self._call("pop3 stat", self._connection.stat)
        return int(count), int(size)

    def uidl(self) -> list[tuple[int, str]]:
        """``(message number, unique id)`` for every message, by number.

        A malformed line or a unique id used twice raises :class:`MailServerError`: eddymail
        knows POP3 mail by its UIDL, and guessing would mean fetching twice or skipping mail.
        """
        try:
            _, lines, _ = self._call("pop3 uidl", self._connection.uidl)
        except MailServerError as error:
            if error.hint is None and error.answer.upper().startswith("-ERR"):
                error.hint = (
                    "the server does not support UIDL, which eddymail needs to tell messages "
                    "apart; use IMAP for this mailbox"
                )
            raise
        listing: dict[int, str] = {}
        owners: dict[str, int] = {}
        for line in lines:
            parts = line.split()
            if (
                len(parts) != 2
                or not parts[0].isdigit()
                or int(parts[0]) < 1
                or not _UNIQUE_ID.fullmatch(parts[1])
                or int(parts[0]) in listing
            ):
                raise self._broken_listing(
                    "a malformed line", line.decode("utf-8", "replace")[:200]
                )
            number, unique_id = int(parts[0]), parts[1].decode("ascii")
            if unique_id in owners:
                raise self._broken_listing(
                    f"messages {owners[unique_id]} and {number} share the unique id",
                    f"{owners[unique_id]} {unique_id}; {number} {unique_id}",
                )
            listing[number] = unique_id
            owners[unique_id] = number
        return sorted(listing.items())

    def sizes(self) -> dict[int, int]:
        """Size in bytes by message number (LIST)."""
        _, lines, _ = self._call("pop3 list", self._connection.list)
        sizes: dict[int, int] = {}
        for line in lines:
            parts = line.split()
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                sizes[int(parts[0])] = int(parts[1])
        return sizes

    def retrieve(self, number: int) -> bytes:
        """The raw message (RETR), lines joined with CRLF; poplib undoes the dot-stuffing."""
        _, lines, _ = self._call("pop3 retr", self._connection.retr, number)
        return b"\r\n".join(lines) + b"\r\n" if lines else b""

    def top(self, number: int, lines: int = 0) -> bytes:
        """The header and the first ``lines`` body lines (TOP), e.g. for mail too big to
        retrieve whole; joined like :meth:`retrieve`."""
        _, result, _ = self._call("pop3 top", self._connection.top, number, lines)
        return b"\r\n".join(result) + b"\r\n" if result else b""

    def delete(self, number: int) -> None:
        """Mark message ``number`` for deletion; QUIT (a clean exit) commits it."""
        self._call("pop3 dele", self._connection.dele, number)

    # -- plumbing --------------------------------------------------------------------------

    @property
    def _connection(self) -> poplib.POP3:
        if self._pop is None:
            raise MailServerError(
                f"POP3 with {self.endpoint.address} failed: the connection is closed.",
                operation="pop3",
            )
        return self._pop

    def _call(self, operation: str, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except _FAILURES as exc:
            raise self._error(exc, operation) from exc

    def _broken_listing(self, what: str, answer: str) -> MailServerError:
        return MailServerError(
            f"POP3 uidl with {self.endpoint.address} failed: the server's unique-id list has "
            f"{what}.",
            operation="pop3 uidl",
            answer=answer,
            hint="the server's UIDL list is broken, so eddymail cannot tell messages apart "
            "safely and fetched nothing; report it to the mail administrator",
        )

    def _error(self, exc: BaseException, operation: str) -> MailServerError:
        if self._watchdog.expired and not isinstance(exc, MailServerError):
            return deadline_reached("pop3", operation, self.endpoint)
        return classify(
            exc,
            protocol="pop3",
            operation=operation,
            endpoint=self.endpoint,
            hints=self.hints,
            secrets=(self._secret.reveal(),),
        )
