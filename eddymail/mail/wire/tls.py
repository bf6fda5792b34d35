"""The one place that builds TLS contexts: verified certificates and host names, always.

Every client gets its context from :func:`make_ssl_context`; there is deliberately no switch to
turn verification off. A server with a self-signed or company certificate is reached by passing
that CA with ``--ca-file``, which is added to (not substituted for) the system trust store.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Callable

from eddymail.errors import MailServerError

CA_FILE_HINT = (
    "pass --ca-file with a readable PEM file that holds the CA certificate "
    "(or remove --ca-file to use the system trust store only)"
)


def make_ssl_context(
    ca_file: str | None = None, *, on_handshake: Callable[[socket.socket], None] | None = None
) -> ssl.SSLContext:
    """Return a client context that verifies certificates and host names.

    ``ssl.create_default_context()`` gives the system trust store, ``check_hostname`` and
    TLS 1.2 as the oldest version; ``ca_file`` (a PEM file, or a directory of hashed
    certificates) is loaded on top. An unusable ``ca_file`` raises :class:`MailServerError`
    with ``tls=True`` rather than a usage error: the path usually comes from a stored channel,
    and a channel with a broken CA path must fail alone without stopping the others.

    ``on_handshake`` is called with every socket the context wraps in this thread, just
    before its TLS handshake starts (also when a library such as smtplib does the
    wrapping), until the thread makes its next context: a
    :class:`~eddymail.mail.wire.endpoint.Watchdog` given it can cut a handshake that never
    ends. Each session makes its context right before it connects, in the thread that
    connects.

    Contexts are kept and shared (per ``ca_file`` and its modification time): loading the
    system trust store costs more CPU than the rest of a fetch of an idle mailbox, and a run
    connects to hundreds of them. A context is never changed after it is made.
    """
    _handshakes.report = on_handshake
    key = _cache_key(ca_file)
    with _contexts_lock:
        context = _contexts.get(key)
    if context is None:
        context = _new_context(ca_file)
        with _contexts_lock:
            _contexts[key] = context
    return context


_contexts: dict[tuple[str, int, int] | None, ssl.SSLContext] = {}
_contexts_lock = threading.Lock()
_handshakes = threading.local()


def _cache_key(ca_file: str | None) -> tuple[str, int, int] | None:
    if not ca_file:
        return None
    path = os.path.expanduser(ca_file)
    try:
        status = os.stat(path)
    except OSError:
        return (path, -1, -1)  # made (and refused) each time: see _new_context
    return (path, status.st_mtime_ns, status.st_size)


def _new_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    # Explicit even though they are the defaults: this is the promise of this module.
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if ca_file:
        path = os.path.expanduser(ca_file)
        try:
            if os.path.isdir(path):
                context.load_verify_locations(capath=path)
            else:
                context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            raise MailServerError(
                f"The CA certificate file {ca_file} cannot be used: {_describe(exc)}.",
                operation="tls setup",
                answer=_describe(exc),
                hint=CA_FILE_HINT,
                tls=True,
            ) from exc
    context.sslsocket_class = _ReportingSSLSocket
    return context


class _ReportingSSLSocket(ssl.SSLSocket):
    # SSLContext.sslsocket_class is the documented way to have wrap_socket() return a
    # subclass. The wrapped socket takes over the descriptor before the handshake, so it is
    # the one a watchdog must be able to shut down while the handshake runs.
    def do_handshake(self, block: bool = False) -> None:
        report = getattr(_handshakes, "report", None)
        if report is not None:
            report(self)
        super().do_handshake(block)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        # e.g. "[X509: NO_CERTIFICATE_OR_CRL_FOUND] no certificate or crl found (_ssl.c:4149)"
        text = exc.reason or str(exc)
        return "no PEM certificate found in the file" if "NO_CERTIFICATE" in str(exc) else text
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)
