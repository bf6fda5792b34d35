"""IMAP over verified TLS with imaplib: read mail without marking it read, then flag, move, delete.

Only ``BODY.PEEK[]`` is ever fetched: ``BODY[]`` and ``RFC822`` set ``\\Seen`` as a side effect,
and the durable-first rule says the server is touched only after the mail is stored. Every
failure becomes a :class:`~eddymail.errors.MailServerError` through
:func:`~eddymail.mail.wire.diagnose.classify`.
"""

from __future__ import annotations

import contextlib
import imaplib
import re
import ssl
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from eddymail.crashpoints import crash_point
from eddymail.errors import MailServerError
from eddymail.mail.wire import sasl
from eddymail.mail.wire.answertext import answer_of
from eddymail.mail.wire.diagnose import classify, deadline_reached, starttls_unavailable
from eddymail.mail.wire.endpoint import NO_HINTS, USUAL_PORTS, Endpoint, ProviderHints, Watchdog
from eddymail.mail.wire.idle import idle_until_announced
from eddymail.mail.wire.imapconnection import DEFAULT_MAX_LITERAL, ImapConnection
from eddymail.mail.wire.imapwire import (
    compress_uids,
    decode_folder_name,
    encode_folder_name,
    fetch_lines,
    fetched_bodies,
    last_int,
    quote,
    response_text,
    uid_of,
    uid_sets,
    unquote,
)
from eddymail.mail.wire.protocolerrors import UnexpectedGreeting
from eddymail.mail.wire.sasl import BearerToken, Secret, plain_response
from eddymail.mail.wire.socketstream import SocketStream
from eddymail.mail.wire.stdlib_imaplib import forget_command_log
from eddymail.mail.wire.tls import make_ssl_context

# Failures a command can raise: protocol errors, socket/TLS errors (OSError), and what imaplib
# lets through from malformed responses.
_FAILURES = (imaplib.IMAP4.error, OSError, EOFError, ValueError, UnicodeError)
# UIDs per command: keeps command lines far below the 8 KiB some servers accept.
_UIDS_PER_COMMAND = 500


@dataclass(frozen=True)
class FolderStatus:
    """Counts of one folder. ``uidnext`` is ``None`` when the server does not say;
    ``unseen`` is ``None`` unless it was asked for (it costs a SEARCH)."""

    folder: str
    exists: int
    unseen: int | None
    uidvalidity: int
    uidnext: int | None


class ImapClient:
    """One logged-in IMAP session; use it as a context manager.

    Connecting, STARTTLS and login happen in ``__init__``. With ``security="starttls"`` the
    upgrade is mandatory: a server that does not offer it gets no password. ``capabilities``
    holds what the server announced after login (upper case). A literal announced bigger than
    ``max_literal`` bytes ends the session before it is read; ``endpoint.deadline`` ends it
    when the time is up, however slowly the server keeps talking.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        password: str | BearerToken,
        hints: ProviderHints = NO_HINTS,
        *,
        max_literal: int = DEFAULT_MAX_LITERAL,
    ) -> None:
        self.endpoint = endpoint
        self.hints = hints
        self.max_literal = max_literal
        self.capabilities: frozenset[str] = frozenset()
        secret, self._bearer = sasl.credential_parts(password)
        self._secret = Secret(secret)
        del password, secret  # only the Secret wrapper stays (tracebacks with locals)
        self._imap: ImapConnection | None = None
        self._broken = False
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
            self._imap = ImapConnection(
                endpoint.host,
                endpoint.port,
                endpoint.timeout,
                stream=stream,
                tls_context=context if endpoint.security == "ssl" else None,
                max_literal=self.max_literal,
            )
        except (*_FAILURES, UnexpectedGreeting) as exc:
            stream.close()
            self._watchdog.stop()
            raise self._error(exc, "imap connect") from exc
        try:
            offered = frozenset(self._imap.capabilities)
            if context is not None and endpoint.security == "starttls":
                offered = self._starttls(context, offered)
            self._login(offered)
            # Servers announce more after login (MOVE, UIDPLUS on Dovecot): most in the
            # login's answer, otherwise they are asked again.
            self.capabilities = self._fetch_capabilities()
        except BaseException:
            self._shutdown()
            raise

    def _starttls(self, context: ssl.SSLContext, offered: frozenset[str]) -> frozenset[str]:
        """Upgrade to TLS or raise; returns the capabilities the server announces under TLS."""
        imap = self._connection
        if imap.preauthenticated:
            # A PREAUTH greeting skips STARTTLS and the login: what a man in the middle who
            # strips STARTTLS would send.
            greeting = (imap.greeting or b"").decode("utf-8", "replace").strip()
            raise starttls_unavailable("imap", self.endpoint, greeting, offered=False)
        if "STARTTLS" not in offered:
            raise starttls_unavailable(
                "imap", self.endpoint, "CAPABILITY " + " ".join(sorted(offered)), offered=False
            )
        self._command("imap starttls", imap.start_tls, context)
        # RFC 3501 6.2.1: what was announced in plain text is forgotten.
        return self._fetch_capabilities()

    def _login(self, offered: frozenset[str]) -> None:
        """Authenticate: the one place a credential is sent.

        LOGIN for a printable-ASCII login and password, otherwise SASL PLAIN; a further
        mechanism (OAuth) goes through :meth:`_authenticate` the same way.
        """
        imap = self._connection
        if imap.preauthenticated:  # the server already knows who we are
            return
        if self._bearer is not None:
            self._bearer_login(offered, self._bearer)
            return
        login, password = self.endpoint.login, self._secret.reveal()
        # imaplib's LOGIN sends str as ASCII and quotes without escaping CR/LF; anything else
        # goes through AUTHENTICATE PLAIN, which carries UTF-8 inside base64.
        use_login = _is_plain_ascii(login) and _is_plain_ascii(password)
        if "LOGINDISABLED" in offered:
            if "AUTH=PLAIN" not in offered:
                ssl_port, plain_port = USUAL_PORTS["imap"]
                raise MailServerError(
                    f"IMAP login with {self.endpoint.address} failed: the server refuses "
                    "passwords over an unencrypted connection.",
                    operation="imap login",
                    answer="CAPABILITY " + " ".join(sorted(offered)),
                    hint=f"use --security starttls (port {plain_port}) or --security ssl "
                    f"(port {ssl_port})",
                )
            use_login = False
        if use_login:
            self._send_credentials(imap.login, login, password)
        else:
            self._authenticate("PLAIN", plain_response(login, password))

    def _bearer_login(self, offered: frozenset[str], mechanisms: tuple[str, ...]) -> None:
        """Sign in with the access token: the mechanism the server offers (SASL-IR when it
        takes it); a refusal raises ``BearerRefused`` with what its error challenge said."""
        imap = self._connection
        names = [word[5:] for word in offered if word.startswith("AUTH=")]
        mechanism, initial = sasl.opening(names, mechanisms, self.endpoint,
                                          self._secret.reveal())
        challenges: list[bytes] = []

        def respond(challenge: bytes) -> bytes:
            # A challenge after the first message is the error report (RFC 7628 §3.2.2).
            challenges.append(challenge)
            return sasl.dummy_response(mechanism)

        pending = [initial]
        failure: MailServerError | None = None
        try:
            if "SASL-IR" in offered:
                imap.authenticate_initial(mechanism, initial, respond)
            else:
                imap.authenticate(mechanism, lambda c: pending.pop() if pending else respond(c))
        except imaplib.IMAP4.abort as exc:
            failure = self._error(exc, "imap login")
        except imaplib.IMAP4.error as exc:  # NO or BAD: the token was refused
            failure = sasl.refused("imap", self.endpoint.address, mechanism,
                                   answer_of(exc), challenges, "imap login", names)
        except _FAILURES as exc:
            failure = self._error(exc, "imap login")
        finally:
            forget_command_log(imap)
        if failure is not None:
            raise failure  # outside the except block: no chain into frames with the token

    def _authenticate(self, mechanism: str, initial_response: bytes, *later: bytes) -> None:
        """One SASL exchange (AUTHENTICATE): the first challenge is answered with
        ``initial_response``, later ones with ``later`` in turn and any beyond those with an
        empty line (how a client acknowledges an error challenge, e.g. XOAUTH2's)."""
        pending = [initial_response, *later]

        def respond(_challenge: bytes) -> bytes:
            return pending.pop(0) if pending else b""

        self._send_credentials(self._connection.authenticate, mechanism, respond)

    def _send_credentials(self, call: Callable[..., object], *args: Any) -> None:
        imap = self._connection
        failure: MailServerError | None = None
        try:
            call(*args)
        except _FAILURES as exc:
            failure = self._error(exc, "imap login")
        finally:
            forget_command_log(imap)
        if failure is not None:
            # Raised outside the except block: the error carries no chain back to imaplib's
            # frames, whose locals hold the password.
            raise failure

    def _fetch_capabilities(self) -> frozenset[str]:
        data = self._command("imap capability", self._connection.capability)
        words: set[str] = set()
        for item in data:
            if isinstance(item, bytes):
                words.update(item.decode("ascii", "replace").upper().split())
        return frozenset(words)

    def close(self) -> None:
        """Log out (best effort, without waiting for the answer) and close the connection;
        never raises."""
        if self._imap is None:
            return
        if not self._broken and not self._watchdog.expired:
            with contextlib.suppress(Exception):  # the session is over either way
                self._imap.send_logout()  # LOGOUT, not CLOSE: CLOSE would expunge \Deleted
        self._shutdown()

    def _shutdown(self) -> None:
        imap, self._imap = self._imap, None
        if imap is not None:
            with contextlib.suppress(Exception):  # closing a dead socket may fail; nothing to do
                imap.shutdown()
        self._watchdog.stop()

    def __enter__(self) -> ImapClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- folders -------------------------------------------------------------------------

    def select(self, folder: str = "INBOX", readonly: bool = False, *,
               count_unseen: bool = False) -> FolderStatus:
        """Select ``folder`` (EXAMINE when ``readonly``) and return its counts: what the
        SELECT answer says, plus the unread ones with ``count_unseen`` (one SEARCH more)."""
        imap = self._connection
        name = quote(encode_folder_name(folder))
        data = self._command("imap select", imap.select, name, readonly, detail=_folder(folder))
        exists = last_int(data)
        uidvalidity = last_int(imap.response("UIDVALIDITY")[1])
        if exists is None or uidvalidity is None:
            raise MailServerError(
                f"IMAP select with {self.endpoint.address} ({_folder(folder)}) failed: the "
                "server did not report the message count and UIDVALIDITY.",
                operation="imap select",
                answer=repr(data)[:200],
                hint="the server does not follow the IMAP standard; eddymail cannot track "
                "messages in this folder safely",
            )
        uidnext = last_int(imap.response("UIDNEXT")[1])
        unseen = None
        if count_unseen:
            unseen = len(self.search_uids("UNSEEN")) if exists else 0
        return FolderStatus(folder, exists, unseen, uidvalidity, uidnext)

    def folders(self) -> list[str]:
        """Names of all folders, decoded from modified UTF-7."""
        data = self._command("imap list", self._connection.list, '""', "*")
        names: list[str] = []
        for item in data:
            if isinstance(item, tuple):  # name sent as a literal
                names.append(decode_folder_name(item[1]))
            elif isinstance(item, bytes):
                match = re.match(rb'\([^)]*\)\s+(?:"(?:[^"\\]|\\.)*"|NIL)\s+(.*)$', item, re.I)
                if match:
                    names.append(decode_folder_name(unquote(match.group(1))))
        return names

    # -- messages ------------------------------------------------------------------------

    def search_uids(self, criteria: str) -> list[int]:
        """UIDs matching an ASCII SEARCH ``criteria`` ("UNSEEN", "UID 5:*"), ascending.

        Beware ``UID n:*``: when every UID is below ``n`` the server still returns the
        highest one (``*`` is the largest UID); the caller filters that out.
        """
        data = self._command("imap search", self._connection.uid, "SEARCH", criteria)
        found: set[int] = set()
        for item in data:
            if isinstance(item, bytes):
                found.update(int(word) for word in item.split() if word.isdigit())
        return sorted(found)

    def existing_uids(self, uids: Iterable[int]) -> set[int]:
        """Those of ``uids`` still in the selected folder (``UID SEARCH UID set``, chunked)."""
        found: set[int] = set()
        for uid_set, wanted in uid_sets(uids, _UIDS_PER_COMMAND):
            found.update(uid for uid in self.search_uids(f"UID {uid_set}") if uid in wanted)
        return found

    def fetch_sizes(self, uids: Iterable[int]) -> dict[int, int]:
        """Sizes in bytes (RFC822.SIZE) by UID; UIDs that no longer exist are left out."""
        sizes: dict[int, int] = {}
        for uid_set, wanted in uid_sets(uids, _UIDS_PER_COMMAND):
            data = self._command(
                "imap fetch", self._connection.uid, "FETCH", uid_set, "(UID RFC822.SIZE)"
            )
            for line in fetch_lines(data):
                uid, size = uid_of(line), re.search(rb"RFC822\.SIZE (\d+)", line)
                if uid in wanted and size:
                    sizes[uid] = int(size.group(1))
        return sizes

    def fetch_flags(self, uids: Iterable[int]) -> dict[int, set[str]]:
        """Flags by UID (``{"\\\\Seen", ...}``); UIDs that no longer exist are left out."""
        flags: dict[int, set[str]] = {}
        for uid_set, wanted in uid_sets(uids, _UIDS_PER_COMMAND):
            data = self._command(
                "imap fetch", self._connection.uid, "FETCH", uid_set, "(UID FLAGS)"
            )
            for line in fetch_lines(data):
                uid, found = uid_of(line), re.search(rb"FLAGS \(([^)]*)\)", line)
                if uid in wanted and found:
                    flags[uid] = set(found.group(1).decode("utf-8", "replace").split())
        return flags

    def fetch_messages(
        self, uids: Iterable[int], batch_size: int = 50
    ) -> Iterator[tuple[int, bytes]]:
        """Yield ``(uid, raw bytes)`` with ``UID FETCH (BODY.PEEK[])``, ``batch_size`` at a time.

        PEEK leaves ``\\Seen`` alone. UIDs the server leaves out (expunged meanwhile) are not
        yielded; the caller notices by their absence.
        """
        ordered = sorted(set(uids))
        for start in range(0, len(ordered), max(batch_size, 1)):
            batch = ordered[start : start + max(batch_size, 1)]
            wanted = set(batch)
            data = self._command("imap fetch", self._connection.uid, "FETCH",
                                 compress_uids(batch), "(UID BODY.PEEK[])")
            yield from fetched_bodies(data, wanted)

    def fetch_headers(self, uids: Iterable[int]) -> dict[int, bytes]:
        """Header sections by UID (``UID FETCH (BODY.PEEK[HEADER])``), e.g. for mail too big to
        fetch whole; leaves ``\\Seen`` alone like :meth:`fetch_messages`."""
        headers: dict[int, bytes] = {}
        for uid_set, wanted in uid_sets(uids, _UIDS_PER_COMMAND):
            data = self._command(
                "imap fetch", self._connection.uid, "FETCH", uid_set, "(UID BODY.PEEK[HEADER])"
            )
            headers.update(fetched_bodies(data, wanted, section=rb"BODY\[HEADER\]"))
        return headers

    def idle(self, seconds: float, stop: Callable[[], bool] = lambda: False) -> bool:
        """Wait in IMAP IDLE (RFC 2177) for news of the selected folder, at most ``seconds``.

        True when the server announced mail (EXISTS or RECENT); False when the time was up
        or ``stop()`` became true (asked about once a second). Announcements the server made
        before the wait (during earlier commands) are dropped: the caller has just looked.
        Requires the IDLE capability.
        """
        imap = self._connection
        for kind in ("EXISTS", "RECENT"):
            imap.response(kind)  # takes (and so forgets) what earlier commands brought
        try:
            return idle_until_announced(imap, seconds, stop)
        except _FAILURES as exc:
            self._broken = True  # the session is in an unknown state: no LOGOUT
            raise self._error(exc, "imap idle") from exc

    # -- changes (only after the mail is stored) -------------------------------------------

    def add_flags(self, uids: Iterable[int], flags: str | Iterable[str] = r"(\Seen)") -> None:
        """Add ``flags`` to the messages (``UID STORE +FLAGS.SILENT``)."""
        flag_list = flags if isinstance(flags, str) else "(" + " ".join(flags) + ")"
        for uid_set, _ in uid_sets(uids, _UIDS_PER_COMMAND):
            self._command(
                "imap store", self._connection.uid, "STORE", uid_set, "+FLAGS.SILENT", flag_list
            )

    def move(self, uids: Iterable[int], folder: str) -> None:
        """Move the messages to ``folder``, creating it when missing.

        ``UID MOVE`` when the server has MOVE; otherwise ``UID COPY``, ``\\Deleted`` and an
        expunge (see :meth:`delete`).
        """
        uid_list = sorted(set(uids))
        if not uid_list:
            return
        target = quote(encode_folder_name(folder))
        command = "MOVE" if "MOVE" in self.capabilities else "COPY"
        for uid_set, _ in uid_sets(uid_list, _UIDS_PER_COMMAND):
            self._to_folder(command, uid_set, target, folder)
        if command == "COPY":
            self.delete(uid_list)

    def delete(self, uids: Iterable[int]) -> None:
        """Mark the messages ``\\Deleted`` and expunge them.

        With UIDPLUS only these UIDs are expunged (``UID EXPUNGE``); without it a plain
        EXPUNGE also removes messages another client marked ``\\Deleted``, as any mail client
        would.
        """
        uid_list = sorted(set(uids))
        if not uid_list:
            return
        self.add_flags(uid_list, r"(\Deleted)")
        crash_point("imap deleted flag set")
        if "UIDPLUS" in self.capabilities:
            for uid_set, _ in uid_sets(uid_list, _UIDS_PER_COMMAND):
                self._command("imap expunge", self._connection.uid, "EXPUNGE", uid_set)
        else:
            self._command("imap expunge", self._connection.expunge)

    def _to_folder(self, command: str, uid_set: str, target: str, folder: str) -> None:
        operation = f"imap {command.lower()}"
        imap = self._connection
        typ, data = self._raw(operation, imap.uid, command, uid_set, target, detail=_folder(folder))
        if typ != "OK":
            text = response_text(typ, data)
            if "TRYCREATE" in text.upper() or folder not in self.folders():
                self._create(folder)
                typ, data = self._raw(operation, imap.uid, command, uid_set, target)
        if typ != "OK":
            raise self._error(
                imaplib.IMAP4.error(response_text(typ, data)), operation, _folder(folder)
            )

    def _create(self, folder: str) -> None:
        typ, data = self._raw(
            "imap create", self._connection.create, quote(encode_folder_name(folder))
        )
        # A concurrent client may have created it meanwhile; that is fine.
        if typ != "OK" and "ALREADYEXISTS" not in response_text(typ, data).upper():
            raise self._error(
                imaplib.IMAP4.error(response_text(typ, data)), "imap create", _folder(folder)
            )

    # -- plumbing --------------------------------------------------------------------------

    @property
    def _connection(self) -> ImapConnection:
        if self._imap is None:
            raise MailServerError(
                f"IMAP with {self.endpoint.address} failed: the connection is closed.",
                operation="imap",
            )
        return self._imap

    def _raw(
        self,
        operation: str,
        call: Callable[..., tuple[str, list[Any]]],
        *args: Any,
        detail: str | None = None,
    ) -> tuple[str, list[Any]]:
        try:
            return call(*args)
        except _FAILURES as exc:
            if isinstance(exc, imaplib.IMAP4.abort | OSError):
                self._broken = True  # a LOGOUT would only wait for a dead peer (or a literal)
            raise self._error(exc, operation, detail) from exc

    def _command(
        self,
        operation: str,
        call: Callable[..., tuple[str, list[Any]]],
        *args: Any,
        detail: str | None = None,
    ) -> list[Any]:
        typ, data = self._raw(operation, call, *args, detail=detail)
        if typ != "OK":
            raise self._error(imaplib.IMAP4.error(response_text(typ, data)), operation, detail)
        return data

    def _error(
        self, exc: BaseException, operation: str, detail: str | None = None
    ) -> MailServerError:
        if self._watchdog.expired and not isinstance(exc, MailServerError):
            return deadline_reached("imap", operation, self.endpoint)
        return classify(
            exc,
            protocol="imap",
            operation=operation,
            endpoint=self.endpoint,
            hints=self.hints,
            secrets=(self._secret.reveal(),),
            detail=detail,
        )


# -- small helpers ---------------------------------------------------------------------------


def _is_plain_ascii(text: str) -> bool:
    return all(0x20 <= ord(char) < 0x7F for char in text)


def _folder(folder: str) -> str:
    return f'folder "{folder}"'
