"""One client connection as the IMAP and POP3 sessions use it: lines, exact reads, TLS.

imaplib reads through ``self.file`` and ``self.sock`` and poplib through private methods with
module-wide line limits. :class:`SocketStream` is the connection eddymail owns instead: the
IMAP session hands imaplib its public ``open``/``read``/``readline``/``send``/``shutdown``
methods backed by a stream, and the POP3 session speaks over one directly. Every socket the
stream starts using is passed to ``on_socket``, so a
:class:`~eddymail.mail.wire.endpoint.Watchdog` can cut it at the deadline; a TLS socket is
reported during its handshake by the context (see
:func:`~eddymail.mail.wire.tls.make_ssl_context`).
"""

from __future__ import annotations

import contextlib
import io
import select
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from eddymail.mail.wire.tls import keep_session, resumable_session

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer  # bytes, bytearray, memoryview...


def _ignore(sock: socket.socket) -> None:
    """The default ``on_socket``: nobody needs to know."""


class SocketStream:
    """A TCP connection read line by line or in exact sizes, upgradable to TLS once.

    ``tls_context``, when given to :meth:`connect`, makes the connection TLS from the first
    byte; :meth:`start_tls` upgrades a plain one (STARTTLS). Reads block for at most the
    connect ``timeout`` each.
    """

    def __init__(self, on_socket: Callable[[socket.socket], None] = _ignore) -> None:
        self.on_socket = on_socket
        self._sock: socket.socket | None = None
        self._reader: io.BufferedReader | None = None
        # (context, server name, address) of a completed TLS handshake: its session is
        # left for the next connection to the same server when this one closes.
        self._resumable: tuple[ssl.SSLContext, str, object] | None = None

    @property
    def sock(self) -> socket.socket:
        """The socket in use (plain, or TLS after the upgrade)."""
        if self._sock is None:
            raise OSError("the connection is closed")
        return self._sock

    def connect(
        self,
        host: str,
        port: int,
        timeout: float | None,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """Open the TCP connection (and its TLS, when ``tls_context`` is given)."""
        sock = socket.create_connection((host, port), timeout)
        self._use(sock)
        if tls_context is not None:
            self._use(self._wrap(tls_context, host))

    def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """Upgrade the connection to TLS (after the server agreed to STARTTLS/STLS).

        Whatever the server sent after its agreement and before the handshake is dropped
        unread, as the standard library's clients do: it came in plain text, and a man in
        the middle could have put it there.
        """
        self._use(self._wrap(context, server_hostname))

    def _wrap(self, context: ssl.SSLContext, server_hostname: str) -> ssl.SSLSocket:
        # An earlier connection's session is resumed when the server agrees (tls.py).
        key = (context, server_hostname, self.sock.getpeername())
        wrapped = context.wrap_socket(self.sock, server_hostname=server_hostname,
                                      session=resumable_session(*key))
        self._resumable = key
        return wrapped

    def _use(self, sock: socket.socket) -> None:
        if self._reader is not None:
            self._reader.close()  # its buffer is dropped; the socket stays open
        self._sock = sock
        self._reader = sock.makefile("rb")
        self.on_socket(sock)

    def readline(self, limit: int) -> bytes:
        """One line with its line end, at most ``limit`` bytes; ``b""`` at end of stream."""
        return self._file.readline(limit)

    def line_reader(self) -> Callable[[int], bytes]:
        """:meth:`readline` without the calls around it, for a loop over many lines (a POP3
        message is read a line at a time): valid until the stream is closed or moves to
        TLS."""
        return self._file.readline

    def read(self, size: int) -> bytes:
        """Exactly ``size`` bytes, or fewer when the stream ends first."""
        return self._file.read(size)

    def wait_readable(self, seconds: float) -> bool:
        """Whether a read would find data within ``seconds`` (at once if some is buffered).

        For IMAP IDLE, which waits for the server as long as it likes. A read with a short
        timeout would leave the buffered reader unusable ("cannot read from timed out
        object"); instead the reader is asked, with the socket briefly non-blocking, for
        what it has or can have at once, and only then is the socket waited for.
        """
        sock = self.sock
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            # Buffered bytes come back without touching the socket; with none, one
            # non-blocking read: data, or b"" for "nothing yet" and for the end of the
            # stream alike (select below tells them apart: an ended stream is readable).
            available = self._file.peek(1)
        except (BlockingIOError, ssl.SSLWantReadError):
            available = b""  # nothing yet (TLS: only part of a record so far)
        finally:
            sock.settimeout(timeout)
        if available:
            return True
        readable, _, _ = select.select([sock], [], [], max(seconds, 0.0))
        return bool(readable)

    def sendall(self, data: ReadableBuffer) -> None:
        """Send all of ``data``."""
        self.sock.sendall(data)

    def close(self) -> None:
        """Shut the connection down and close it; safe to call twice, never raises."""
        reader, self._reader = self._reader, None
        sock, self._sock = self._sock, None
        if reader is not None:
            with contextlib.suppress(OSError):
                reader.close()
        if isinstance(sock, ssl.SSLSocket) and self._resumable is not None:
            keep_session(*self._resumable, sock)
        if sock is not None:
            with contextlib.suppress(OSError):  # the server may have closed already
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    @property
    def _file(self) -> io.BufferedReader:
        if self._reader is None:
            raise OSError("the connection is closed")
        return self._reader
