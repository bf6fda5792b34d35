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
import time
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


# -- session resumption ------------------------------------------------------------------------

# Per context, server name and address: sessions (tickets) to resume, each offered once.
_sessions: dict[tuple[ssl.SSLContext, str, object], list[ssl.SSLSession]] = {}
_sessions_lock = threading.Lock()
# Sessions kept per server: as many as connections to it overlap in a run, give or take.
_SESSIONS_PER_SERVER = 64


def resumable_session(context: ssl.SSLContext, server_name: str,
                      address: object) -> ssl.SSLSession | None:
    """A TLS session an earlier connection to this server (same context, same name, same
    address) left, to resume instead of a full handshake; ``None`` if there is none.

    A resumed handshake skips the certificate chain (already verified, by this context, for
    this name, when the session was made) and the server's signature: CPU on both sides,
    and a round trip on TLS 1.2. Each session is handed out once (RFC 8446 C.4: a ticket
    reused would let an observer link the connections); the connection leaves its own,
    fresher one with :func:`keep_session`. A server that refuses it gets a full handshake.
    """
    now = time.time()
    with _sessions_lock:
        kept = _sessions.get((context, server_name, address))
        while kept:
            session = kept.pop()
            if session.time + session.timeout > now:
                return session
    return None


def keep_session(context: ssl.SSLContext, server_name: str, address: object,
                 sock: ssl.SSLSocket) -> None:
    """Keep the session of ``sock`` (whose handshake completed) for a later connection to
    the same server (:func:`resumable_session`). A TLS 1.3 session without a ticket
    cannot be resumed and is not kept."""
    session = sock.session
    if session is None or (not session.has_ticket and sock.version() == "TLSv1.3"):
        return
    with _sessions_lock:
        kept = _sessions.setdefault((context, server_name, address), [])
        kept.append(session)
        del kept[:-_SESSIONS_PER_SERVER]


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
