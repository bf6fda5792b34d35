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
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from eddymail.crashpoints import crash_point
from eddymail.errors import MailServerError
from eddymail.mail.wire.diagnose import (
    USUAL_PORTS,
    ResponseTooLarge,
    Secret,
    UnexpectedGreeting,
    classify,
    deadline_reached,
    starttls_unavailable,
)
from eddymail.mail.wire.endpoint import NO_HINTS, Endpoint, ProviderHints, Watchdog
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
from eddymail.mail.wire.tls import make_ssl_context

# Failures a command can raise: protocol errors, socket/TLS errors (OSError), and what imaplib
# lets through from malformed responses.
_FAILURES = (imaplib.IMAP4.error, OSError, EOFError, ValueError, UnicodeError)
# UIDs per command: keeps command lines far below the 8 KiB some servers accept.
_UIDS_PER_COMMAND = 500
#: The largest literal (``{N}``) a session accepts unless told otherwise: imaplib would
#: allocate N bytes up front, whatever N a server announces.
DEFAULT_MAX_LITERAL = 256 * 1024 * 1024
# A literal announcement at the end of a response line, e.g. a FETCH answer that ends in
# "{5000000000}".
# Also the binary (~{N}) form; more than 18 digits cannot be a size anyone accepts.
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n\Z")


@dataclass(frozen=True)
class FolderStatus:
    """Counts of one folder. ``uidnext`` is ``None`` when the server does not say."""

    folder: str
    exists: int
    unseen: int
    uidvalidity: int
    uidnext: int | None


class _LineLimit:
    """Own line and literal limits and greeting check for imaplib, without its module globals.

    imaplib's global line limit (1 MB) is shared by every user of the module; a UID SEARCH
    over a big mailbox can exceed it, so the limit lives on our subclasses instead. A
    literal announced larger than ``max_literal`` is refused before imaplib reads (and
    allocates) it. A :class:`~eddymail.mail.wire.endpoint.Watchdog` watches the socket from the
    first byte on, so a deadline also bounds the greeting and the TLS handshake.
    """

    max_line = 16 * 1024 * 1024
    max_literal = DEFAULT_MAX_LITERAL
    first_line: bytes | None = None
    file: Any
    error: type[imaplib.IMAP4.error]

    def __init__(
        self,
        *args: Any,
        watchdog: Watchdog | None = None,
        max_literal: int = DEFAULT_MAX_LITERAL,
        **kwargs: Any,
    ) -> None:
        self.max_literal = max_literal
        if watchdog is not None:
            watchdog.watch(lambda: getattr(self, "sock", None))
        super().__init__(*args, **kwargs)

    def readline(self) -> bytes:
        line: bytes = self.file.readline(self.max_line + 1)
        if len(line) > self.max_line:
            raise self.error(f"got a response line longer than {self.max_line} bytes")
        if self.first_line is None:
            self.first_line = line
        literal = _LITERAL.search(line)
        if literal is not None:
            digits = literal.group(1)
            size = int(digits) if len(digits) <= 18 else None
            if size is None or size > self.max_literal:
                raise _LiteralTooLarge(size, self.max_literal, "literal")
        return line

    def _connect(self) -> None:
        try:
            super()._connect()  # type: ignore[misc]
        except imaplib.IMAP4.error as exc:
            # imaplib reports a POP3/SMTP greeting as "None" or "unexpected response"; keep
            # the line itself so the error can say what answered on this port.
            if not self.first_line or isinstance(exc, ResponseTooLarge):
                raise
            greeting = self.first_line.decode("utf-8", "replace").strip()
            raise UnexpectedGreeting("imap", greeting) from exc


class _LiteralTooLarge(ResponseTooLarge, imaplib.IMAP4.abort):
    """A refused literal; an ``abort`` for imaplib, since its bytes are still on the way."""


class _Imap(_LineLimit, imaplib.IMAP4):
    pass


class _ImapSSL(_LineLimit, imaplib.IMAP4_SSL):
    def _create_socket(self, timeout: float | None) -> Any:
        # imaplib.IMAP4_SSL wraps the socket before it lets go of it; exposing the plain
        # one first lets the watchdog cut a TLS handshake that never ends.
        sock = imaplib.IMAP4._create_socket(self, timeout)
        self.sock = sock
        return self.ssl_context.wrap_socket(sock, server_hostname=self.host)


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
        password: str,
        hints: ProviderHints = NO_HINTS,
        *,
        max_literal: int = DEFAULT_MAX_LITERAL,
    ) -> None:
        self.endpoint = endpoint
        self.hints = hints
        self.max_literal = max_literal
        self.capabilities: frozenset[str] = frozenset()
        self._secret = Secret(password)
        del password  # only the Secret wrapper stays in this frame (tracebacks with locals)
        self._imap: imaplib.IMAP4 | None = None
        self._broken = False
        self._watchdog = Watchdog(endpoint.deadline)
        self._open()

    # -- session -------------------------------------------------------------------------

    def _open(self) -> None:
        endpoint = self.endpoint
        context = make_ssl_context(endpoint.ca_file) if endpoint.security != "none" else None
        try:
            limits = {"watchdog": self._watchdog, "max_literal": self.max_literal}
            if endpoint.security == "ssl":
                self._imap = _ImapSSL(
                    endpoint.host,
                    endpoint.port,
                    ssl_context=context,
                    timeout=endpoint.timeout,
                    **limits,
                )
            else:
                self._imap = _Imap(endpoint.host, endpoint.port, timeout=endpoint.timeout, **limits)
        except (*_FAILURES, UnexpectedGreeting) as exc:
            self._watchdog.stop()
            raise self._error(exc, "imap connect") from exc
        try:
            if endpoint.security == "starttls":
                self._starttls(context)
            self._login()
            self.capabilities = self._fetch_capabilities()
        except BaseException:
            self._shutdown()
            raise

    def _starttls(self, context: Any) -> None:
        imap = self._connection
        offered = set(imap.capabilities)
        if "STARTTLS" not in offered:
            raise starttls_unavailable(
                "imap", self.endpoint, "CAPABILITY " + " ".join(sorted(offered)), offered=False
            )
        try:
            imap.starttls(ssl_context=context)
        except _FAILURES as exc:
            raise self._error(exc, "imap starttls") from exc

    def _login(self) -> None:
        imap = self._connection
        if imap.state == "AUTH":  # PREAUTH greeting: the server already knows who we are
            return
        login, password = self.endpoint.login, self._secret.reveal()
        offered = set(imap.capabilities)
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
        failure: MailServerError | None = None
        try:
            if use_login:
                imap.login(login, password)
            else:

                def plain(_challenge: bytes) -> bytes:
                    return b"\0" + login.encode("utf-8") + b"\0" + password.encode("utf-8")

                imap.authenticate("PLAIN", plain)
        except _FAILURES as exc:
            failure = self._error(exc, "imap login")
        finally:
            _forget_command_log(imap)
        if failure is not None:
            # Raised outside the except block: the error carries no chain back to imaplib's
            # frames, whose locals hold the password.
            raise failure

    def _fetch_capabilities(self) -> frozenset[str]:
        # Servers announce more after login (MOVE, UIDPLUS on Dovecot), so ask again.
        data = self._command("imap capability", self._connection.capability)
        words: set[str] = set()
        for item in data:
            if isinstance(item, bytes):
                words.update(item.decode("ascii", "replace").upper().split())
        return frozenset(words)

    def close(self) -> None:
        """Log out (best effort) and close the connection; never raises."""
        if self._imap is None:
            return
        if not self._broken and not self._watchdog.expired:
            with contextlib.suppress(Exception):  # the session is over either way
                self._imap.logout()  # LOGOUT, not CLOSE: CLOSE would expunge \Deleted mail
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

    def select(self, folder: str = "INBOX", readonly: bool = False) -> FolderStatus:
        """Select ``folder`` (EXAMINE when ``readonly``) and return its counts."""
        imap = self._connection
        name = quote(encode_folder_name(folder))
        data = self._command("imap select", imap.select, name, readonly, detail=_folder(folder))
        exists = last_int(data)
        uidvalidity = last_int(imap.untagged_responses.get("UIDVALIDITY", []))
        if exists is None or uidvalidity is None:
            raise MailServerError(
                f"IMAP select with {self.endpoint.address} ({_folder(folder)}) failed: the "
                "server did not report the message count and UIDVALIDITY.",
                operation="imap select",
                answer=repr(data)[:200],
                hint="the server does not follow the IMAP standard; eddymail cannot track "
                "messages in this folder safely",
            )
        uidnext = last_int(imap.untagged_responses.get("UIDNEXT", []))
        unseen = len(self.search_uids("UNSEEN")) if exists else 0
        return FolderStatus(folder, exists, unseen, uidvalidity, uidnext)

    def status(self, folder: str) -> FolderStatus:
        """Counts of ``folder`` without selecting it (IMAP STATUS)."""
        name = quote(encode_folder_name(folder))
        data = self._command(
            "imap status",
            self._connection.status,
            name,
            "(MESSAGES UNSEEN UIDVALIDITY UIDNEXT)",
            detail=_folder(folder),
        )
        values: dict[str, int] = {}
        for item in data:
            line = item[-1] if isinstance(item, tuple) else item
            if not isinstance(line, bytes):
                continue
            match = re.search(rb"\(([^()]*)\)\s*$", line)
            if match:
                words = match.group(1).decode("ascii", "replace").split()
                values.update(
                    (key.upper(), int(value))
                    for key, value in zip(words[::2], words[1::2], strict=False)
                    if value.isdigit()
                )
        if "MESSAGES" not in values or "UIDVALIDITY" not in values:
            raise MailServerError(
                f"IMAP status with {self.endpoint.address} ({_folder(folder)}) failed: the "
                "answer lacks the message count or UIDVALIDITY.",
                operation="imap status",
                answer=repr(data)[:200],
            )
        return FolderStatus(
            folder,
            values["MESSAGES"],
            values.get("UNSEEN", 0),
            values["UIDVALIDITY"],
            values.get("UIDNEXT"),
        )

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
        highest one (``*`` is the largest UID); :meth:`uids_from` filters that out.
        """
        data = self._command("imap search", self._connection.uid, "SEARCH", criteria)
        found: set[int] = set()
        for item in data:
            if isinstance(item, bytes):
                found.update(int(word) for word in item.split() if word.isdigit())
        return sorted(found)

    def uids_from(self, first_uid: int) -> list[int]:
        """UIDs greater than or equal to ``first_uid`` (new mail since a stored UIDNEXT)."""
        return [uid for uid in self.search_uids(f"UID {max(first_uid, 1)}:*") if uid >= first_uid]

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
    def _connection(self) -> imaplib.IMAP4:
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


def _forget_command_log(imap: imaplib.IMAP4) -> None:
    # imaplib keeps the last ten command lines (LOGIN with its password among them) for
    # print_log(); nothing prints it unless debug is on, but there is no reason to keep it.
    log = getattr(imap, "_cmd_log", None)
    if isinstance(log, dict):
        log.clear()


def _folder(folder: str) -> str:
    return f'folder "{folder}"'
