"""POP3 commands and answers over eddymail's own connection (RFC 1939, 2449, 2595, 5034).

poplib has no public way to bound a line or a multi-line answer (its 2048-byte line limit is a
module global, too short for real mail), to reach its socket, or to send AUTH; doing those
through it meant overriding its private ``_getline``/``_getlongresp``/``_create_socket``.
POP3 is small enough to speak directly: a command is one line, an answer one ``+OK``/``-ERR``
line, optionally followed by dot-stuffed lines up to a lone ``.``. Refusals raise
:class:`poplib.error_proto` with the server's line, as poplib would, so errors read the same.
"""

from __future__ import annotations

import base64
import binascii
import poplib
import ssl
from collections.abc import Callable

from eddymail.mail.wire.protocolerrors import ResponseTooLarge
from eddymail.mail.wire.socketstream import SocketStream

#: The most bytes one multi-line answer (RETR, TOP, UIDL, LIST) may have unless told
#: otherwise: the lines are collected in memory, and a server may send without end.
DEFAULT_MAX_RESPONSE = 256 * 1024 * 1024
#: The longest line: real mail has long lines (HTML from some mailers, unwrapped base64),
#: and a message that cannot be read would block the mailbox for ever.
MAX_LINE = 16 * 1024 * 1024
# Continuation requests answered during one AUTH before eddymail gives up.
_MAX_CHALLENGES = 5
# The longest AUTH command with its initial response, CRLF included (RFC 5034 §4).
_MAX_AUTH_LINE = 255


class AnswerTooLarge(ResponseTooLarge, poplib.error_proto):
    """A refused answer; the rest of it is still on the way, so the session is over."""


class Pop3Connection:
    """One POP3 connection from the greeting on; TLS from the first byte with ``tls_context``.

    A greeting other than ``+OK`` raises ``error_proto`` with it. A multi-line answer over
    ``max_response`` bytes raises :class:`AnswerTooLarge` before it fills the memory.
    """

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float,
        *,
        stream: SocketStream,
        tls_context: ssl.SSLContext | None = None,
        max_response: int = DEFAULT_MAX_RESPONSE,
    ) -> None:
        self.host = host
        self.stream = stream
        self.max_response = max_response
        stream.connect(host, port, timeout, tls_context)
        self._answer()  # the greeting

    # -- commands ------------------------------------------------------------------------------

    def command(self, *words: str) -> bytes:
        """Send a command; return its ``+OK`` line (``-ERR`` raises ``error_proto``)."""
        self._send(" ".join(words))
        return self._answer()

    def send_only(self, *words: str) -> None:
        """Send a command whose answer nobody needs (QUIT with nothing to commit)."""
        self._send(" ".join(words))

    def multiline(self, *words: str) -> list[bytes]:
        """Send a command answered by lines up to a lone ``.``; return them, un-dot-stuffed."""
        lines: list[bytes] = []
        self.multiline_to(lines.append, *words)
        return lines

    def multiline_to(self, take: Callable[[bytes], object], *words: str) -> None:
        """:meth:`multiline`, each line handed to ``take`` as it comes: a message of tens of
        megabytes is never held as a list of its lines (half as big again as its bytes)."""
        self.command(*words)
        # A message of 5 KB is a hundred lines, one with 200 KB attached thousands: the
        # reader's readline is called directly, not through _line.
        readline = self.stream.line_reader()
        size = 0
        while True:
            line = _without_line_end(readline(MAX_LINE + 1))
            if line == b".":
                return
            if line.startswith(b".."):
                line = line[1:]
            size += len(line) + 2
            if size > self.max_response:
                raise AnswerTooLarge(None, self.max_response, "multi-line answer")
            take(line)

    def capabilities(self) -> dict[str, list[str]]:
        """What CAPA announces, by name (upper case); empty when the server has no CAPA."""
        try:
            lines = self.multiline("CAPA")
        except poplib.error_proto as error:
            if isinstance(error, AnswerTooLarge):
                raise
            return {}
        announced: dict[str, list[str]] = {}
        for line in lines:
            words = line.decode("ascii", "replace").split()
            if words:
                announced[words[0].upper()] = words[1:]
        return announced

    def start_tls(self, context: ssl.SSLContext) -> None:
        """STLS, then the TLS handshake (RFC 2595)."""
        self.command("STLS")
        self.stream.start_tls(context, self.host)

    def authenticate(self, mechanism: str, initial_response: bytes, *later: bytes,
                     challenges: list[bytes] | None = None) -> None:
        """AUTH (RFC 5034): ``initial_response`` goes with the command, ``later`` answer the
        ``+`` challenges in turn, and any challenge beyond them gets an empty answer (how a
        client acknowledges an error challenge, e.g. XOAUTH2's). The challenges the server
        sent after the first message (decoded) are added to ``challenges``.

        An initial response that would make the command longer than 255 octets (a bearer
        token) waits for the server's first, empty challenge instead, as RFC 5034 §4 asks.
        """
        pending = [base64.b64encode(response).decode("ascii") for response in later]
        # "=" is an empty initial response; nothing at all would mean "no initial response".
        initial = base64.b64encode(initial_response).decode("ascii") or "="
        command = f"AUTH {mechanism} {initial}"
        if len(command) + 2 > _MAX_AUTH_LINE:
            command = f"AUTH {mechanism}"
            pending.insert(0, initial)
        first = len(pending) - len(later)  # challenges answered before the error reports
        self._send(command)
        for answered in range(_MAX_CHALLENGES):
            line = self._answer()
            if not (line == b"+" or line.startswith(b"+ ")):
                return  # +OK
            if challenges is not None and answered >= first:
                challenges.append(_decoded(line[2:]))
            self._send(pending.pop(0) if pending else "")
        raise poplib.error_proto("-ERR the server kept asking during AUTH")

    def close(self) -> None:
        """Close the connection without QUIT (the server then forgets this session's DELEs)."""
        self.stream.close()

    # -- lines ---------------------------------------------------------------------------------

    def _send(self, line: str) -> None:
        if any(char in line for char in "\r\n\0"):
            # One command is one line; a line break would start another command.
            raise ValueError("a POP3 command cannot contain a line break or NUL")
        self.stream.sendall(line.encode("utf-8") + b"\r\n")

    def _answer(self) -> bytes:
        line = self._line()
        if not line.startswith(b"+"):
            raise poplib.error_proto(line)
        return line

    def _line(self) -> bytes:
        return _without_line_end(self.stream.readline(MAX_LINE + 1))


def _without_line_end(line: bytes) -> bytes:
    """A line read with a limit of ``MAX_LINE + 1`` bytes, without its CRLF (or LF); one
    over the limit, or none at all (the stream ended), raises ``error_proto``."""
    if len(line) > MAX_LINE:
        raise poplib.error_proto(f"-ERR line longer than {MAX_LINE} bytes")
    if not line:
        raise poplib.error_proto("-ERR EOF")
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith(b"\n") else line


def _decoded(data: bytes) -> bytes:
    """A challenge's base64 decoded (or as sent, when it is not base64)."""
    try:
        return base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError):
        return data.strip()
