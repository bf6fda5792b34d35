"""Small scripted loopback mail servers for faults a real server will not produce.

Each server listens on 127.0.0.1, serves any number of connections (one thread each) and
records every line a client sent in ``received`` — after decryption when TLS was set up — so
a test can prove what never arrived (a password, a LOGIN in plain text). A TLS handshake
the client broke off is recorded in ``handshake_errors``.

The protocol servers (:class:`ImapServer`, :class:`Pop3Server`, :class:`SmtpServer`) speak
just enough of their protocol for eddymail's clients to fetch mail from them, and are meant
to be subclassed: a test overrides one method to misbehave at exactly one step.
"""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import trustme

__all__ = [
    "Connection",
    "ImapServer",
    "Pop3Server",
    "ScriptedServer",
    "SmtpServer",
    "silent",
    "unknown_ca_context",
]

# Long enough for any test, short enough that a forgotten connection does not hang the run.
CONNECTION_TIMEOUT = 30.0


class Connection:
    """One client connection as a protocol handler sees it."""

    def __init__(self, server: ScriptedServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.reader = sock.makefile("rb")

    def send(self, data: bytes) -> None:
        """Send ``data``; raises OSError when the client hung up, which ends the handler."""
        self.sock.sendall(data)

    def hang_up(self) -> None:
        """Close the connection now (a FIN to the client, whoever else holds the socket)."""
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()

    def readline(self) -> bytes:
        """One line from the client (recorded), or ``b""`` when it hung up or went quiet."""
        try:
            line = self.reader.readline(1024 * 1024)
        except (OSError, ValueError):
            return b""
        if line:
            self.server.record(line)
        return line

    def lines(self) -> Iterator[bytes]:
        """Lines from the client until it hangs up."""
        while line := self.readline():
            yield line

    def start_tls(self, context: ssl.SSLContext) -> bool:
        """Upgrade to TLS as the server (STARTTLS); False when the client broke it off."""
        try:
            self.sock = context.wrap_socket(self.sock, server_side=True)
        except (OSError, ssl.SSLError) as error:
            self.server.handshake_errors.append(str(error))
            return False
        self.server.resumed.append(self.sock.session_reused)
        self.reader = self.sock.makefile("rb")
        return True

    def wait_for_hangup(self) -> None:
        """Say nothing more; read (and record) until the client gives up."""
        with contextlib.suppress(OSError, ValueError):
            while data := self.sock.recv(65536):
                self.server.record(data)


class ScriptedServer:
    """A threaded loopback TCP server running ``handler(connection)`` for each client.

    ``tls``: a server-side context for TLS from the first byte (IMAPS, POP3S, SMTPS).
    ``resumed`` says, for each completed TLS handshake in turn (STARTTLS too), whether the
    client resumed an earlier session.
    """

    def __init__(self, handler: Callable[[Connection], None],
                 tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.received: list[bytes] = []
        self.handshake_errors: list[str] = []
        self.resumed: list[bool] = []
        self.connections = 0
        self.host = "127.0.0.1"
        self._listener = socket.create_server((self.host, 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True,
                                          name="scripted-accept")
        self._acceptor.start()

    # -- what the client sent ------------------------------------------------------------

    def record(self, data: bytes) -> None:
        """Remember bytes the client sent."""
        with self._lock:
            self.received.append(data)

    @property
    def transcript(self) -> bytes:
        """Everything the client sent, joined."""
        with self._lock:
            return b"".join(self.received)

    def commands(self) -> list[str]:
        """The command words the client sent (IMAP: after the tag), upper case."""
        words = []
        for line in list(self.received):
            parts = line.split()
            if not parts:
                continue
            is_imap_tag = len(parts) > 1 and re.fullmatch(rb"[A-Z]+\d+", parts[0])
            word = parts[1] if is_imap_tag else parts[0]
            words.append(word.decode("ascii", "replace").upper())
        return words

    # -- serving ---------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        # Closing a listener does not wake a thread blocked in accept(): poll instead.
        self._listener.settimeout(0.05)
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            sock.setblocking(True)
            with self._lock:
                self.connections += 1
                self._sockets.append(sock)
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True,
                                      name="scripted-connection")
            thread.start()
            self._threads.append(thread)

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(CONNECTION_TIMEOUT)
        try:
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_side=True)
                except (OSError, ssl.SSLError) as error:
                    self.handshake_errors.append(str(error))
                    return
                self.resumed.append(sock.session_reused)
                with self._lock:
                    self._sockets.append(sock)
            self.handler(Connection(self, sock))
        except OSError:
            pass  # the client went away: that is its business
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        """Stop listening, cut every connection and wait for the handler threads."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        self._acceptor.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def silent(connection: Connection) -> None:
    """Accept, then never say a word."""
    connection.wait_for_hangup()


def unknown_ca_context(directory: Path) -> ssl.SSLContext:
    """A server context whose certificate (for 127.0.0.1) comes from a CA nobody trusts."""
    ca = trustme.CA(organization_name="nobody trusts this CA")
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    # Kept on disk only so a failing test can be looked at; eddymail is never given it.
    ca.cert_pem.write_to_path(str(directory / "unknown-ca.pem"))
    return context


# --- IMAP ----------------------------------------------------------------------------------


def _uid_set(text: str, highest: int) -> set[int]:
    """``"1:3,7,9:*"`` -> UIDs; ``n:*`` always includes the highest UID (RFC 3501)."""
    uids: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition(":")
        low = highest if first == "*" else int(first)
        high = low if not last else (highest if last == "*" else int(last))
        low, high = min(low, high), max(low, high)
        uids.update(range(low, high + 1))
    return uids


class ImapServer:
    """A scripted IMAP4rev1 server with one folder (INBOX); override ``do_*`` to misbehave.

    ``messages`` get UIDs 1, 2, ... ``starttls``: a context to offer STARTTLS with.
    ``flags`` and ``messages`` change as a real server's would (STORE, EXPUNGE, MOVE, COPY);
    ``folders`` holds what was moved or copied elsewhere, by folder name.
    """

    capabilities = "IMAP4rev1 AUTH=PLAIN UIDPLUS MOVE"

    def __init__(self, messages: list[bytes] | None = None, *, uidvalidity: int = 7,
                 starttls: ssl.SSLContext | None = None) -> None:
        self.messages: dict[int, bytes] = {
            uid: raw for uid, raw in enumerate(messages or [], start=1)}
        self.flags: dict[int, set[str]] = {uid: set() for uid in self.messages}
        self.uidvalidity = uidvalidity
        self.starttls = starttls
        self.folders: dict[str, list[bytes]] = {}
        self.highest_uid = len(self.messages)
        self.lock = threading.Lock()

    def __call__(self, connection: Connection) -> None:
        """Serve one connection."""
        self.greet(connection)
        for line in connection.lines():
            tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
            command, _, arguments = rest.partition(b" ")
            handler = getattr(self, "do_" + command.decode("ascii", "replace").upper(), None)
            if handler is None:
                connection.send(tag + b" BAD unknown command\r\n")
                continue
            with self.lock:
                if handler(connection, tag, arguments) is False:
                    return

    # -- capabilities and login ------------------------------------------------------------

    def capability_line(self, tls_active: bool = False) -> bytes:
        """What CAPABILITY announces."""
        words = self.capabilities
        if self.starttls is not None and not tls_active:
            words += " STARTTLS"
        return words.encode()

    def greet(self, connection: Connection) -> None:
        """Send the greeting."""
        connection.send(b"* OK [CAPABILITY " + self.capability_line() + b"] Scripted ready.\r\n")

    def do_CAPABILITY(self, connection: Connection, tag: bytes, arguments: bytes) -> None:
        tls = isinstance(connection.sock, ssl.SSLSocket)
        connection.send(b"* CAPABILITY " + self.capability_line(tls) + b"\r\n" + tag
                        + b" OK done\r\n")

    def do_STARTTLS(self, connection: Connection, tag: bytes, arguments: bytes) -> bool | None:
        if self.starttls is None:
            connection.send(tag + b" BAD STARTTLS not offered\r\n")
            return None
        connection.send(tag + b" OK Begin TLS negotiation now\r\n")
        return connection.start_tls(self.starttls)

    def do_LOGIN(self, connection: Connection, tag: bytes, arguments: bytes) -> None:
        connection.send(tag + b" OK logged in\r\n")

    def do_AUTHENTICATE(self, connection: Connection, tag: bytes, arguments: bytes) -> None:
        connection.send(b"+ \r\n")
        connection.readline()  # the credentials, recorded
        connection.send(tag + b" OK logged in\r\n")

    def do_NOOP(self, connection: Connection, tag: bytes, arguments: bytes) -> None:
        connection.send(tag + b" OK done\r\n")

    def do_LOGOUT(self, connection: Connection, tag: bytes, arguments: bytes) -> bool:
        connection.send(b"* BYE bye\r\n" + tag + b" OK done\r\n")
        return False

    # -- the folder ------------------------------------------------------------------------

    @property
    def uidnext(self) -> int:
        """The next UID the folder would give."""
        return self.highest_uid + 1

    def do_SELECT(self, connection: Connection, tag: bytes, arguments: bytes) -> None:
        connection.send(
            b"* %d EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY %d] ok\r\n* OK [UIDNEXT %d] ok\r\n"
            % (len(self.messages), self.uidvalidity, self.uidnext)
            + tag + b" OK [READ-WRITE] done\r\n")

    do_EXAMINE = do_SELECT

    def do_CLOSE(self, connection: Connection, tag: bytes, arguments: bytes) -> None:
        connection.send(tag + b" OK done\r\n")

    def do_EXPUNGE(self, connection: Connection, tag: bytes, arguments: bytes) -> None:
        self._expunge(set(self.messages))
        connection.send(tag + b" OK done\r\n")

    def do_UID(self, connection: Connection, tag: bytes, arguments: bytes) -> None:
        command, _, rest = arguments.partition(b" ")
        name = command.decode("ascii", "replace").upper()
        handler = getattr(self, "uid_" + name, None)
        if handler is None:
            connection.send(tag + b" BAD unknown UID command\r\n")
            return
        handler(connection, tag, rest.decode("ascii", "replace"))

    def sequence(self, uid: int) -> int:
        """The message sequence number of ``uid``."""
        return sorted(self.messages).index(uid) + 1

    def search(self, criteria: str) -> list[int]:
        """UIDs matching the (small) subset of SEARCH eddymail uses."""
        words = criteria.upper().split()
        found = set(self.messages)
        index = 0
        while index < len(words):
            word = words[index]
            if word == "UID":
                found &= _uid_set(words[index + 1], max(self.messages, default=0))
                index += 2
                continue
            if word == "UNSEEN":
                found = {uid for uid in found if "\\Seen" not in self.flags[uid]}
            elif word == "BEFORE":
                found = set()  # nothing here is older than a first connection
                index += 1
            index += 1
        return sorted(found)

    def uid_SEARCH(self, connection: Connection, tag: bytes, criteria: str) -> None:
        found = " ".join(map(str, self.search(criteria)))
        connection.send(f"* SEARCH {found}".rstrip().encode() + b"\r\n" + tag + b" OK done\r\n")

    def uid_FETCH(self, connection: Connection, tag: bytes, arguments: str) -> None:
        uid_set, _, items = arguments.partition(" ")
        wanted = _uid_set(uid_set, max(self.messages, default=0)) & set(self.messages)
        for uid in sorted(wanted):
            connection.send(self.fetch_response(uid, items.upper()))
        connection.send(tag + b" OK done\r\n")

    def fetch_response(self, uid: int, items: str) -> bytes:
        """The untagged FETCH response for one UID (``items`` upper case)."""
        raw = self.messages[uid]
        number = self.sequence(uid)
        if "RFC822.SIZE" in items:
            return b"* %d FETCH (UID %d RFC822.SIZE %d)\r\n" % (number, uid, self.size_of(uid))
        if "FLAGS" in items and "BODY" not in items:
            flags = " ".join(sorted(self.flags[uid])).encode()
            return b"* %d FETCH (UID %d FLAGS (%s))\r\n" % (number, uid, flags)
        if "BODY.PEEK[HEADER]" in items:
            header = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
            return b"* %d FETCH (UID %d BODY[HEADER] {%d}\r\n%s)\r\n" % (
                number, uid, len(header), header)
        return self.body_response(uid)

    def size_of(self, uid: int) -> int:
        """What RFC822.SIZE says."""
        return len(self.messages[uid])

    def body_response(self, uid: int) -> bytes:
        """The answer to ``UID FETCH uid (UID BODY.PEEK[])``."""
        raw = self.messages[uid]
        return b"* %d FETCH (UID %d BODY[] {%d}\r\n%s)\r\n" % (
            self.sequence(uid), uid, len(raw), raw)

    def uid_STORE(self, connection: Connection, tag: bytes, arguments: str) -> None:
        uid_set, action, flag_list = arguments.split(" ", 2)
        flags = set(flag_list.strip("()").split())
        for uid in _uid_set(uid_set, max(self.messages, default=0)) & set(self.messages):
            if action.upper().startswith("+"):
                self.flags[uid] |= flags
            else:
                self.flags[uid] -= flags
        connection.send(tag + b" OK done\r\n")

    def uid_EXPUNGE(self, connection: Connection, tag: bytes, arguments: str) -> None:
        self._expunge(_uid_set(arguments.strip(), max(self.messages, default=0)))
        connection.send(tag + b" OK done\r\n")

    def uid_MOVE(self, connection: Connection, tag: bytes, arguments: str) -> None:
        uid_set, _, folder = arguments.partition(" ")
        for uid in sorted(_uid_set(uid_set, max(self.messages, default=0)) & set(self.messages)):
            self.folders.setdefault(folder.strip('"'), []).append(self.messages.pop(uid))
            self.flags.pop(uid)
        connection.send(tag + b" OK done\r\n")

    def uid_COPY(self, connection: Connection, tag: bytes, arguments: str) -> None:
        uid_set, _, folder = arguments.partition(" ")
        for uid in sorted(_uid_set(uid_set, max(self.messages, default=0)) & set(self.messages)):
            self.folders.setdefault(folder.strip('"'), []).append(self.messages[uid])
        connection.send(tag + b" OK done\r\n")

    def _expunge(self, uids: set[int]) -> None:
        for uid in sorted(uids & set(self.messages)):
            if "\\Deleted" in self.flags[uid]:
                del self.messages[uid]
                del self.flags[uid]


# --- POP3 ----------------------------------------------------------------------------------


class Pop3Server:
    """A scripted POP3 server; override a method to misbehave.

    ``messages`` are ``(unique id, raw)`` pairs. ``stls``: a context to offer STLS with.
    DELE takes effect at QUIT, as on a real server.
    """

    def __init__(self, messages: list[tuple[str, bytes]] | None = None, *,
                 stls: ssl.SSLContext | None = None) -> None:
        self.messages = list(messages or [])
        self.stls = stls
        self.lock = threading.Lock()

    def __call__(self, connection: Connection) -> None:
        """Serve one connection."""
        deleted: set[int] = set()
        connection.send(b"+OK Scripted POP3 ready.\r\n")
        for line in connection.lines():
            command, _, arguments = line.rstrip(b"\r\n").partition(b" ")
            word = command.decode("ascii", "replace").upper()
            with self.lock:
                if word == "QUIT":
                    self.messages = [message for number, message
                                     in enumerate(self.messages, start=1)
                                     if number not in deleted]
                    connection.send(b"+OK bye\r\n")
                    return
                if word == "DELE":
                    deleted.add(int(arguments))
                    connection.send(b"+OK marked\r\n")
                    continue
                handler = getattr(self, "do_" + word, None)
                if handler is None:
                    connection.send(b"-ERR unknown command\r\n")
                elif handler(connection, arguments.decode("ascii", "replace")) is False:
                    return

    def do_CAPA(self, connection: Connection, arguments: str) -> None:
        stls = b"STLS\r\n" if self.stls is not None else b""
        connection.send(b"+OK\r\nUSER\r\nUIDL\r\nTOP\r\n" + stls + b".\r\n")

    def do_STLS(self, connection: Connection, arguments: str) -> bool | None:
        if self.stls is None:
            connection.send(b"-ERR no TLS here\r\n")
            return None
        connection.send(b"+OK Begin TLS\r\n")
        return connection.start_tls(self.stls)

    def do_USER(self, connection: Connection, arguments: str) -> None:
        connection.send(b"+OK\r\n")

    def do_PASS(self, connection: Connection, arguments: str) -> None:
        connection.send(b"+OK logged in\r\n")

    def do_NOOP(self, connection: Connection, arguments: str) -> None:
        connection.send(b"+OK\r\n")

    def do_STAT(self, connection: Connection, arguments: str) -> None:
        size = sum(len(raw) for _, raw in self.messages)
        connection.send(b"+OK %d %d\r\n" % (len(self.messages), size))

    def do_UIDL(self, connection: Connection, arguments: str) -> None:
        connection.send(b"+OK\r\n" + self.uidl_lines() + b".\r\n")

    def uidl_lines(self) -> bytes:
        """The body of the UIDL answer."""
        return b"".join(b"%d %s\r\n" % (number, uidl.encode())
                        for number, (uidl, _) in enumerate(self.messages, start=1))

    def do_LIST(self, connection: Connection, arguments: str) -> None:
        lines = b"".join(b"%d %d\r\n" % (number, self.size_of(number))
                         for number in range(1, len(self.messages) + 1))
        connection.send(b"+OK\r\n" + lines + b".\r\n")

    def size_of(self, number: int) -> int:
        """What LIST says about message ``number``."""
        return len(self.messages[number - 1][1])

    def do_RETR(self, connection: Connection, arguments: str) -> None:
        connection.send(b"+OK\r\n")
        self.send_body(connection, int(arguments))

    def send_body(self, connection: Connection, number: int) -> None:
        """The lines of RETR ``number``, dot-stuffed, and the final dot."""
        raw = self.messages[number - 1][1]
        stuffed = re.sub(rb"(?m)^\.", b"..", raw)
        connection.send(stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n")

    def do_TOP(self, connection: Connection, arguments: str) -> None:
        number = int(arguments.split()[0])
        header = self.messages[number - 1][1].split(b"\r\n\r\n", 1)[0]
        connection.send(b"+OK\r\n" + header + b"\r\n\r\n.\r\n")


# --- SMTP ----------------------------------------------------------------------------------


class SmtpServer:
    """A scripted submission server; ``starttls`` is a context, ``"refuse"`` (454) or None."""

    def __init__(self, starttls: ssl.SSLContext | str | None = None) -> None:
        self.starttls = starttls
        self.auth_attempts = 0

    def __call__(self, connection: Connection) -> None:
        """Serve one connection."""
        connection.send(b"220 scripted.test ESMTP\r\n")
        tls_active = isinstance(connection.sock, ssl.SSLSocket)
        for line in connection.lines():
            word = line.split(b" ", 1)[0].strip().upper()
            if word in (b"EHLO", b"HELO"):
                offer = b"250-STARTTLS\r\n" if self.starttls and not tls_active else b""
                connection.send(b"250-scripted.test\r\n" + offer + b"250 AUTH PLAIN LOGIN\r\n")
            elif word == b"STARTTLS":
                if not isinstance(self.starttls, ssl.SSLContext):
                    connection.send(b"454 4.7.0 TLS not available due to temporary reason\r\n")
                    continue
                connection.send(b"220 2.0.0 Ready to start TLS\r\n")
                if not connection.start_tls(self.starttls):
                    return
                tls_active = True
            elif word == b"AUTH":
                self.auth_attempts += 1
                connection.send(b"235 2.7.0 Authentication successful\r\n")
            elif word == b"QUIT":
                connection.send(b"221 bye\r\n")
                return
            else:
                connection.send(b"250 ok\r\n")
