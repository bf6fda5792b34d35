"""POP3 over verified TLS: list by UIDL, retrieve, delete.

POP3 deletes are transactional: ``DELE`` only marks a message, and the marks are committed by
``QUIT``. A session that ends any other way (an error, a crash, a cut connection) rolls them
back, so the context manager sends QUIT only when the ``with`` block finished cleanly — the
durable-first rule in protocol form.
"""

from __future__ import annotations

import contextlib
import io
import poplib
import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Any

from eddymail.errors import MailServerError, ValidationError
from eddymail.mail.wire import sasl
from eddymail.mail.wire.answertext import answer_of
from eddymail.mail.wire.diagnose import classify, deadline_reached, starttls_unavailable
from eddymail.mail.wire.endpoint import NO_HINTS, Endpoint, ProviderHints, Watchdog
from eddymail.mail.wire.pop3connection import (
    DEFAULT_MAX_RESPONSE,
    AnswerTooLarge,
    Pop3Connection,
)
from eddymail.mail.wire.sasl import BearerToken, Secret
from eddymail.mail.wire.socketstream import SocketStream
from eddymail.mail.wire.tls import make_ssl_context
from eddymail.patterns import LazyPattern

_FAILURES = (poplib.error_proto, OSError, EOFError, ValueError, UnicodeError)
# RFC 1939 allows 1-70 printable characters; a little slack for servers that exceed it.
_UNIQUE_ID = LazyPattern(rb"[\x21-\x7e]{1,128}")


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
        password: str | BearerToken,
        hints: ProviderHints = NO_HINTS,
        *,
        max_response: int = DEFAULT_MAX_RESPONSE,
    ) -> None:
        self.endpoint = endpoint
        self.hints = hints
        self.max_response = max_response
        secret, self._bearer = sasl.credential_parts(password)
        self._secret = Secret(secret)
        del password, secret  # only the Secret wrapper stays (tracebacks with locals)
        self._pop: Pop3Connection | None = None
        self._deleted = False  # a DELE was sent: QUIT's answer is the commit
        self._watchdog = Watchdog(endpoint.deadline)
        self._open()

    # -- session -------------------------------------------------------------------------

    def _open(self) -> None:
        endpoint = self.endpoint
        context = None
        if endpoint.security != "none":
            context = make_ssl_context(endpoint.ca_file, on_handshake=self._watchdog.watch)
        stream = SocketStream(on_socket=self._watchdog.watch)
        try:
            self._pop = Pop3Connection(
                endpoint.host,
                endpoint.port,
                endpoint.timeout,
                stream=stream,
                tls_context=context if endpoint.security == "ssl" else None,
                max_response=self.max_response,
            )
        except _FAILURES as exc:
            stream.close()
            self._watchdog.stop()
            raise self._error(exc, "pop3 connect") from exc
        try:
            if context is not None and endpoint.security == "starttls":
                self._starttls(context)
            self._login()
        except BaseException:
            self._close_socket()
            raise

    def _starttls(self, context: ssl.SSLContext) -> None:
        pop = self._connection
        capabilities = self._call("pop3 starttls", pop.capabilities)
        if "STLS" not in capabilities:
            raise starttls_unavailable(
                "pop3", self.endpoint, "CAPA " + " ".join(sorted(capabilities)), offered=False
            )
        self._call("pop3 starttls", pop.start_tls, context)

    def _login(self) -> None:
        """Authenticate: the one place a credential is sent (USER and PASS, or AUTH with an
        OAuth 2.0 access token)."""
        if self._bearer is not None:
            self._bearer_login(self._bearer)
            return
        login, password = self.endpoint.login, self._secret.reveal()
        if any(char in login + password for char in "\r\n\0"):
            # USER/PASS are single lines; a line break would inject a command.
            raise ValidationError("The POP3 login or password contains a line break or NUL.")
        self._send_credentials(self._user_pass, login, password)

    def _bearer_login(self, mechanisms: tuple[str, ...]) -> None:
        """AUTH with the access token, in the mechanism the server's CAPA offers; a refusal
        raises ``BearerRefused`` with what its error challenge said."""
        pop = self._connection
        offered = self._call("pop3 login", pop.capabilities).get("SASL", [])
        mechanism, initial = sasl.opening(offered, mechanisms, self.endpoint,
                                          self._secret.reveal())
        challenges: list[bytes] = []
        failure: MailServerError | None = None
        try:
            pop.authenticate(mechanism, initial, sasl.dummy_response(mechanism),
                             challenges=challenges)
        except AnswerTooLarge as exc:
            failure = self._error(exc, "pop3 login")
        except poplib.error_proto as exc:  # -ERR: the token was refused
            failure = sasl.refused("pop3", self.endpoint.address, mechanism, answer_of(exc),
                                   challenges, "pop3 login", offered)
        except _FAILURES as exc:
            failure = self._error(exc, "pop3 login")
        if failure is not None:
            raise failure  # outside the except block: no chain into frames with the token

    def _user_pass(self, login: str, password: str) -> None:
        self._connection.command("USER", login)
        self._connection.command("PASS", password)

    def _send_credentials(self, call: Callable[..., None], *args: Any) -> None:
        failure: MailServerError | None = None
        try:
            call(*args)
        except _FAILURES as exc:
            failure = self._error(exc, "pop3 login")
        if failure is not None:
            raise failure  # outside the except block: no chain into frames holding the password

    def quit(self) -> None:
        """Send QUIT, which commits the deletions, and close the connection.

        QUIT's answer is awaited only after a DELE (it says the deletions were committed);
        otherwise there is nothing to hear and the session costs a round trip less.
        """
        pop = self._connection
        try:
            if self._deleted:
                pop.command("QUIT")
            else:
                pop.send_only("QUIT")
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
        answer = self._call("pop3 stat", self._connection.command, "STAT")
        words = answer.split()
        if len(words) < 3 or not words[1].isdigit() or not words[2].isdigit():
            raise self._error(poplib.error_proto(answer), "pop3 stat")
        return int(words[1]), int(words[2])

    def uidl(self) -> list[tuple[int, str]]:
        """``(message number, unique id)`` for every message, by number.

        A malformed line or a unique id used twice raises :class:`MailServerError`: eddymail
        knows POP3 mail by its UIDL, and guessing would mean fetching twice or skipping mail.
        """
        try:
            lines = self._call("pop3 uidl", self._connection.multiline, "UIDL")
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
        lines = self._call("pop3 list", self._connection.multiline, "LIST")
        sizes: dict[int, int] = {}
        for line in lines:
            parts = line.split()
            if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
                sizes[int(parts[0])] = int(parts[1])
        return sizes

    def retrieve(self, number: int) -> bytes:
        """The raw message (RETR), lines joined with CRLF, dot-stuffing undone."""
        # Written line by line into one buffer, whose bytes getvalue() hands over without a
        # copy: a list of the lines and its join took 2.5 times the message.
        buffer = io.BytesIO()

        def take(line: bytes) -> None:
            buffer.write(line)
            buffer.write(b"\r\n")

        self._call("pop3 retr", self._connection.multiline_to, take, "RETR", str(number))
        return buffer.getvalue()

    def top(self, number: int, lines: int = 0) -> bytes:
        """The header and the first ``lines`` body lines (TOP), e.g. for mail too big to
        retrieve whole; joined like :meth:`retrieve`."""
        result = self._call("pop3 top", self._connection.multiline, "TOP", str(number), str(lines))
        return b"\r\n".join(result) + b"\r\n" if result else b""

    def delete(self, number: int) -> None:
        """Mark message ``number`` for deletion; QUIT (a clean exit) commits it."""
        self._deleted = True
        self._call("pop3 dele", self._connection.command, "DELE", str(number))

    # -- plumbing --------------------------------------------------------------------------

    @property
    def _connection(self) -> Pop3Connection:
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
