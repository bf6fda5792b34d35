"""Fault injection for the fetch reliability tests: a TCP proxy that cuts connections, bulk
delivery into a mailbox, and running the real CLI as a child process that can be killed.

Everything here stays on 127.0.0.1. The proxy forwards bytes without looking into them, so a
TLS session (IMAPS, POP3S) goes through unchanged and the client still verifies the server's
certificate, which is valid for 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.harness.dovecot import DovecotServer, MailUser

__all__ = [
    "REPO_ROOT",
    "CliRun",
    "CuttingProxy",
    "append_messages",
    "cli_command",
    "cli_environment",
    "reaped",
    "run_cli",
    "start_cli",
]

REPO_ROOT = Path(__file__).resolve().parent.parent

_TLS_APPLICATION_DATA = 23
_TLS_HEADER = 5
_APPENDUID = re.compile(rb"\[APPENDUID \d+ (\d+)\]")


class CuttingProxy:
    """A threaded TCP proxy on 127.0.0.1 in front of ``upstream`` that can cut connections.

    Each accepted connection is forwarded to ``upstream_host:upstream_port``. The fault
    settings are read when a connection is accepted, so a test can change them between runs:

    * ``cut_after_server_bytes``: forward exactly this many bytes from the server, then close
      both sides (a connection lost in the middle of a response);
    * ``cut_at_client_record``: when the client sends its Nth TLS application-data record
      (1-based; TLS 1.3 counts the client's encrypted Finished as the first), drop it
      unforwarded and close both sides (the server never sees that command).

    ``None`` means "do not cut". ``cuts`` counts the connections that were cut, so a test can
    prove its fault really happened. ``client_bytes`` holds what each connection's client
    sent, in the order the connections came (a plain-text session's commands, for tests
    that count the work a client asks of a server).
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.cut_after_server_bytes: int | None = None
        self.cut_at_client_record: int | None = None
        self.cuts = 0
        self.connections = 0
        self.client_bytes: list[bytearray] = []
        self._all: list[_ProxiedConnection] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.host = "127.0.0.1"
        self.port: int = self._listener.getsockname()[1]
        # Closing a socket does not wake a thread blocked in accept() on Linux: poll instead.
        self._listener.settimeout(0.1)
        self._lock = threading.Lock()
        self._open: set[_ProxiedConnection] = set()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy-accept",
                                          daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue  # look at the stop flag again
            except OSError:
                return  # the listener was closed by stop()
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.connections += 1
                connection = _ProxiedConnection(
                    self, client, server, self.cut_after_server_bytes, self.cut_at_client_record
                )
                self.client_bytes.append(connection.received)
                self._all.append(connection)
                self._open.add(connection)
            for target, name in ((connection.pump_server, "server"),
                                 (connection.pump_client, "client")):
                thread = threading.Thread(target=target, name=f"proxy-{name}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _cut(self, connection: _ProxiedConnection) -> None:
        with self._lock:
            self.cuts += 1

    def _forget(self, connection: _ProxiedConnection) -> None:
        with self._lock:
            self._open.discard(connection)

    def cut_all(self) -> int:
        """Close every open connection now (a server dropping its clients); how many."""
        with self._lock:
            open_connections = list(self._open)
        for connection in open_connections:
            connection.cut()
        return len(open_connections)

    def wait_closed(self, timeout: float = 10) -> None:
        """Wait until every connection so far was closed by a side (so ``client_bytes``
        holds all the client sent); ``TimeoutError`` if one is still open after
        ``timeout`` seconds (each)."""
        with self._lock:
            connections = list(self._all)
        for connection in connections:
            if not connection.closed.wait(timeout):
                raise TimeoutError("a proxied connection is still open")

    def pause(self) -> None:
        """A server going down: drop every connection and refuse new ones until
        :meth:`resume` (the port is closed, so a connect is refused)."""
        self._stopping.set()
        self._acceptor.join(timeout=5)
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut_all()

    def resume(self) -> None:
        """The server is back, on the same port."""
        self._listener = socket.create_server((self.host, self.port))
        self._listener.settimeout(0.1)
        self._stopping.clear()
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy-accept",
                                          daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        """Stop accepting, close every open connection and wait for the threads."""
        self._stopping.set()
        self._acceptor.join(timeout=5)  # it polls the flag every 0.1 s
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            open_connections = list(self._open)
        for connection in open_connections:
            connection.close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _ProxiedConnection:
    """One client connection and its upstream twin, pumped by two threads."""

    def __init__(self, proxy: CuttingProxy, client: socket.socket, server: socket.socket,
                 cut_after_server_bytes: int | None, cut_at_client_record: int | None) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.cut_after_server_bytes = cut_after_server_bytes
        self.cut_at_client_record = cut_at_client_record
        self.received = bytearray()  # everything the client sent, forwarded or not
        self.closed = threading.Event()
        self._close_lock = threading.Lock()
        # Blocking sockets without timeouts: close() from another thread ends a blocked recv.
        for sock in (client, server):
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        """Close both sides (a FIN to each peer); safe to call from either pump."""
        with self._close_lock:
            if self.closed.is_set():
                return
            self.closed.set()
        for sock in (self.client, self.server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        self.proxy._forget(self)

    def cut(self) -> None:
        """Close both sides because a fault setting fired."""
        self.proxy._cut(self)
        self.close()

    def pump_server(self) -> None:
        """Server to client, counting bytes for ``cut_after_server_bytes``."""
        sent = 0
        limit = self.cut_after_server_bytes
        try:
            while not self.closed.is_set():
                chunk = self.server.recv(65536)
                if not chunk:
                    break
                if limit is not None and sent + len(chunk) >= limit:
                    self.client.sendall(chunk[: limit - sent])
                    self.cut()
                    return
                self.client.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        self.close()

    def pump_client(self) -> None:
        """Client to server; with ``cut_at_client_record``, forwarded record by record."""
        target = self.cut_at_client_record
        buffer = b""
        records = 0
        try:
            while not self.closed.is_set():
                chunk = self.client.recv(65536)
                if not chunk:
                    break
                self.received += chunk
                if target is None:
                    self.server.sendall(chunk)
                    continue
                buffer += chunk
                # Forward whole TLS records only, so the cut lands exactly between two.
                while len(buffer) >= _TLS_HEADER:
                    length = int.from_bytes(buffer[3:5], "big")
                    if len(buffer) < _TLS_HEADER + length:
                        break
                    record, buffer = buffer[: _TLS_HEADER + length], buffer[_TLS_HEADER + length:]
                    if record[0] == _TLS_APPLICATION_DATA:
                        records += 1
                        if records == target:
                            self.cut()
                            return
                    self.server.sendall(record)
        except OSError:
            pass
        self.close()


def append_messages(
    dovecot: DovecotServer,
    user: MailUser,
    messages: Iterable[bytes],
    *,
    folder: str = "INBOX",
) -> list[int]:
    """APPEND every message over one plain IMAP session (loopback); return their UIDs.

    ``DovecotServer.deliver`` logs in once per message; a few hundred messages are much
    quicker through one session.
    """
    imap = imaplib.IMAP4(dovecot.host, dovecot.imap_port, timeout=30)
    # imaplib writes a literal and its closing CRLF separately; without TCP_NODELAY, Nagle
    # and delayed ACKs cost ~40 ms per message.
    imap.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    uids: list[int] = []
    try:
        credentials = f"\0{user.login}\0{user.password}".encode()
        imap.authenticate("PLAIN", lambda _challenge: credentials)
        for raw in messages:
            typ, data = imap.append(folder, None, None, raw)
            match = _APPENDUID.search(data[0] if data and isinstance(data[0], bytes) else b"")
            if typ != "OK" or match is None:
                raise RuntimeError(f"APPEND failed: {typ} {data!r}")
            uids.append(int(match.group(1)))
    finally:
        with contextlib.suppress(Exception):
            imap.logout()
    return uids


# --- the CLI as a child process ----------------------------------------------------------------


def cli_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment (the test's isolated database, HOME, XDG dirs and
    in-memory keyring backend) plus ``extra``, with the repository importable so the child
    can load the test keyring backend if anything asks for a keyring."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO_ROOT), environment.get("PYTHONPATH", "")])
    )
    # No terminal: no progress bar and no colour codes in what the tests read.
    environment["NO_COLOR"] = "1"
    environment.update(extra or {})
    return environment


def cli_command(*args: str) -> list[str]:
    """argv that runs ``eddymail ARGS`` with this interpreter."""
    return [sys.executable, "-m", "eddymail", *args]


@dataclass
class CliRun:
    """A finished child ``eddymail`` run."""

    args: Sequence[str]
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        """A failure message with everything the child said."""
        return (f"eddymail {' '.join(self.args)} exited {self.returncode}\n"
                f"stdout: {self.stdout}\nstderr: {self.stderr}")


def run_cli(*args: str, timeout: float = 60, env: Mapping[str, str] | None = None) -> CliRun:
    """Run ``eddymail ARGS`` as a child process to the end and return what it did."""
    completed = subprocess.run(
        cli_command(*args), env=cli_environment(env), cwd=REPO_ROOT, capture_output=True,
        text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
    )
    return CliRun(args, completed.returncode, completed.stdout, completed.stderr)


def start_cli(*args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``eddymail ARGS`` as a child process (output discarded); the caller waits or
    kills it by its PID."""
    return subprocess.Popen(
        cli_command(*args), env=cli_environment(env), cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


@contextlib.contextmanager
def reaped(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """Make sure a started child is gone (SIGKILL by its PID) when the block ends."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        if process.stderr is not None:
            process.stderr.close()
