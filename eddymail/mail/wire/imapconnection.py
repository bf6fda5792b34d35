"""imaplib over eddymail's own connection, through imaplib's public, overridable I/O methods.

``IMAP4.open``, ``read``, ``readline``, ``send``, ``shutdown`` and ``socket`` are documented
as the methods a subclass may override (the standard library's own ``IMAP4_stream`` does);
:class:`ImapConnection` backs them with a :class:`~eddymail.mail.wire.socketstream.SocketStream`,
so eddymail decides how lines are read, how long they may be and which literal sizes are
accepted, without imaplib's module-wide limit or its private attributes.
"""

from __future__ import annotations

import base64
import binascii
import imaplib
import re
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from eddymail.mail.wire.protocolerrors import ResponseTooLarge, UnexpectedGreeting
from eddymail.mail.wire.socketstream import SocketStream
from eddymail.patterns import LazyPattern

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer  # what imaplib's send() takes, for the type checker

IMAP_PORT = 143
#: The largest literal (``{N}``) a session accepts unless told otherwise: imaplib would
#: allocate N bytes up front, whatever N a server announces.
DEFAULT_MAX_LITERAL = 256 * 1024 * 1024
#: The longest response line: a UID SEARCH over a big mailbox is one long line.
MAX_LINE = 16 * 1024 * 1024
# A literal announcement at the end of a response line, e.g. a FETCH answer that ends in
# "{5000000000}". Also the binary (~{N}) form; more than 18 digits cannot be a size anyone
# accepts.
_LITERAL = LazyPattern(rb"\{(\d+)\+?\}\r\n\Z")
# Challenges answered during one AUTHENTICATE before eddymail gives up.
_MAX_CHALLENGES = 5
# A CAPABILITY response code in a status line (RFC 3501 7.1, RFC 9051 7.1): the greeting
# ("* OK [CAPABILITY ...]", "* PREAUTH [CAPABILITY ...]") or a tagged OK, e.g. LOGIN's.
_CAPABILITY_CODE = LazyPattern(rb"\S+ (?:OK|PREAUTH) \[CAPABILITY ([^\]]*)\]", re.IGNORECASE)


class LiteralTooLarge(ResponseTooLarge, imaplib.IMAP4.abort):
    """A refused literal; an ``abort`` for imaplib, since its bytes are still on the way."""


class ImapConnection(imaplib.IMAP4):
    """An imaplib session over ``stream``; TLS from the first byte when ``tls_context`` is set.

    A response line longer than :data:`MAX_LINE` is an error; a literal announced larger
    than ``max_literal`` ends the session before imaplib reads (and allocates) it. A first
    line that is not an IMAP greeting raises :class:`UnexpectedGreeting` with that line.
    ``greeting`` keeps the server's first line (``* OK``, ``* PREAUTH``...).

    :meth:`capability` answers from a CAPABILITY response code when the answer to the
    latest command (or the greeting) carried one, instead of asking the server again: one
    round trip less at the connect and one after the login on most servers.
    """

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        *,
        stream: SocketStream,
        tls_context: ssl.SSLContext | None = None,
        max_literal: int = DEFAULT_MAX_LITERAL,
    ) -> None:
        self.server_name = host  # what the certificate must be valid for
        self.stream = stream
        self.tls_context = tls_context
        self.max_literal = max_literal
        self.greeting: bytes | None = None
        self._own_tags = 0
        # The capabilities the answer to the latest command announced in a response code.
        self._announced: bytes | None = None
        try:
            super().__init__(host, port, timeout)
        except imaplib.IMAP4.error as exc:
            # imaplib reports a POP3/SMTP greeting as "None" or "unexpected response"; keep
            # the line itself so the error can say what answered on this port.
            if not self.greeting or isinstance(exc, ResponseTooLarge):
                raise
            raise UnexpectedGreeting(
                "imap", self.greeting.decode("utf-8", "replace").strip()
            ) from exc

    @property
    def preauthenticated(self) -> bool:
        """The server greeted with PREAUTH: logged in already, no STARTTLS possible."""
        return (self.greeting or b"").upper().startswith(b"* PREAUTH")

    # -- imaplib's overridable I/O ------------------------------------------------------------

    def open(
        self, host: str = "", port: int = IMAP_PORT, timeout: float | None = None
    ) -> None:
        """Connect the stream (imaplib calls this from its constructor)."""
        self.stream.connect(host, port, timeout, self.tls_context)

    def read(self, size: int) -> bytes:
        """A literal of ``size`` bytes (already checked against ``max_literal``)."""
        return self.stream.read(size)

    def readline(self) -> bytes:
        """One response line, checked for its length and for the size of a literal."""
        line = self.stream.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise imaplib.IMAP4.error(f"got a response line longer than {MAX_LINE} bytes")
        if self.greeting is None:
            self.greeting = line
        announced = _CAPABILITY_CODE.match(line)
        if announced is not None:
            self._announced = announced.group(1)
        literal = _LITERAL.search(line)
        if literal is not None:
            digits = literal.group(1)
            size = int(digits) if len(digits) <= 18 else None
            if size is None or size > self.max_literal:
                raise LiteralTooLarge(size, self.max_literal, "literal")
        return line

    def send(self, data: ReadableBuffer) -> None:
        """Send a command line (or a literal)."""
        self._announced = None  # announced in answer to an earlier command: not this one's
        self.stream.sendall(data)

    def shutdown(self) -> None:
        """Close the connection."""
        self.stream.close()

    def socket(self) -> socket.socket:
        """The socket in use (the TLS one after STARTTLS)."""
        return self.stream.sock

    # -- capabilities -------------------------------------------------------------------------

    def capability(self) -> tuple[str, list[bytes | None]]:
        """``("OK", [capabilities])`` as announced in a response code of the latest answer
        (imaplib calls this right after the greeting); else asked with CAPABILITY."""
        announced, self._announced = self._announced, None
        if announced is not None:
            return "OK", [announced]
        return super().capability()

    # -- LOGOUT --------------------------------------------------------------------------------

    def send_logout(self) -> None:
        """Send LOGOUT and close without waiting for the server's goodbye: nothing is left
        to hear (every change was answered already), so the session costs a round trip less.
        """
        self.state = "LOGOUT"
        try:
            self.send(self._own_tag(b"BYE") + b" LOGOUT\r\n")
        finally:
            self.shutdown()

    def _own_tag(self, prefix: bytes) -> bytes:
        # Tags of commands spoken here rather than by imaplib: never one of imaplib's.
        self._own_tags += 1
        return b"EDDY%s%d" % (prefix, self._own_tags)

    # -- STARTTLS ------------------------------------------------------------------------------

    def start_tls(self, context: ssl.SSLContext) -> tuple[str, list[bytes]]:
        """Send STARTTLS; on OK upgrade the stream. Returns imaplib's ``(typ, data)``.

        Done here rather than with ``IMAP4.starttls``, which reaches into the socket
        attributes this class does not use.
        """
        typ, data = self.xatom("STARTTLS")
        if typ == "OK":
            self.stream.start_tls(context, self.server_name)
            # RFC 3501 6.2.1: what was announced in plain text is forgotten.
            self._announced = None
        return typ, data

    # -- AUTHENTICATE with an initial response -----------------------------------------------------

    def authenticate_initial(self, mechanism: str, initial_response: bytes,
                             respond: Callable[[bytes], bytes]) -> None:
        """AUTHENTICATE with the first message on the command line (SASL-IR, RFC 4959).

        imaplib's ``authenticate`` always waits for an empty challenge first, so this one
        exchange is spoken here: each further challenge (``+ base64``) is answered with
        ``respond(decoded challenge)``; untagged lines are skipped. On OK the session is
        authenticated for imaplib too (its ``state``); NO or BAD raise ``IMAP4.error`` with
        the server's text, as imaplib would.
        """
        tag = self._own_tag(b"SASL")
        initial = base64.b64encode(initial_response) or b"="  # "=": an empty response
        self.send(tag + b" AUTHENTICATE " + mechanism.encode("ascii") + b" " + initial + b"\r\n")
        for _ in range(_MAX_CHALLENGES):
            line = self.readline().rstrip(b"\r\n")
            if line.startswith(b"+"):
                try:
                    challenge = base64.b64decode(line[1:].strip(), validate=True)
                except (binascii.Error, ValueError):
                    challenge = line[1:].strip()
                self.send(base64.b64encode(respond(challenge)) + b"\r\n")
            elif line.startswith(tag + b" "):
                status, _, text = line[len(tag) + 1:].partition(b" ")
                if status.upper() != b"OK":
                    raise imaplib.IMAP4.error(text.decode("utf-8", "replace"))
                self.state = "AUTH"
                return
            elif not line.startswith(b"*"):
                raise imaplib.IMAP4.abort(f"unexpected answer to AUTHENTICATE: {line[:200]!r}")
        raise imaplib.IMAP4.abort("the server kept asking during AUTHENTICATE")
