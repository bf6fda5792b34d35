"""Real-server test harness: a private Dovecot, an aiosmtpd SMTP server, a test PKI and an
in-memory keyring, wired into pytest by :mod:`tests.harness.plugin`.

This module holds the small socket and process helpers the servers share. It imports none of
the submodules, so importing one of them stays cheap. Only loopback addresses are used.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
from pathlib import Path

__all__ = [
    "can_bind",
    "die_with_parent",
    "free_port",
    "free_ports",
    "port_answers",
    "tail",
    "terminate_process_group",
]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that is currently free on ``host``.

    The port is found by binding to port 0 and closing the socket again, so another process
    can in principle grab it before the caller binds it; the servers in this harness retry
    with fresh ports when that happens.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int, hosts: list[str]) -> list[int]:
    """Return ``count`` distinct ports that are free on every one of ``hosts``."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(hosts[0])
        if port in ports:
            continue
        try:
            for host in hosts[1:]:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind((host, port))
        except OSError:
            continue
        ports.append(port)
    return ports


def can_bind(host: str) -> bool:
    """True if a TCP socket can be bound on ``host`` (e.g. 127.0.0.2 is not on macOS)."""
    try:
        free_port(host)
    except OSError:
        return False
    return True


def port_answers(host: str, port: int, greeting: bytes | None = None) -> bool:
    """True if ``host:port`` accepts a connection (and, if given, starts with ``greeting``)."""
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            return greeting is None or sock.recv(100).startswith(greeting)
    except OSError:
        return False


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text.splitlines()[-lines:])


def terminate_process_group(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Stop a child started with ``start_new_session=True``: SIGTERM, wait, SIGKILL.

    Afterwards whatever is left in its process group (children that outlived it) is killed;
    the group id is the child's own PID, so nothing outside what we started is touched.
    """
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


# Looked up in the parent: between fork and exec the child should do as little as possible.
_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """``preexec_fn`` that makes the child get SIGTERM when the test process dies.

    So a pytest killed hard (no fixture teardown) leaves no server behind on a loopback port.
    Linux only; elsewhere a no-op. It fires when the *thread* that started the child exits, so
    start servers from the main thread (pytest fixtures do).
    """
    prctl = getattr(_LIBC, "prctl", None)
    if prctl is not None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
