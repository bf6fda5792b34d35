"""Turn what the network, TLS or a mail server said into an error a person can act on.

The clients catch socket, ssl, imaplib, poplib and smtplib exceptions at each step and pass
them to :func:`classify`, which returns one :class:`MailServerError` carrying

* ``message`` — a sentence naming the step and ``host:port``,
* ``answer`` — the server's own words (or the network stack's), passwords scrubbed
  (:mod:`~eddymail.mail.wire.answertext`),
* ``hint`` — the likely cause and what to do, when the answer is recognisable,
* ``tls`` — whether the failure was about TLS.

This module reads network, TLS and protocol-mismatch failures; what a server's refusal means
(wrong password, app password, IMAP switched off...) is in :mod:`~eddymail.mail.wire.refusals`.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Iterable

from eddymail.errors import MailServerError
from eddymail.mail.wire.answertext import answer_of, causes, is_server_answer, redact
from eddymail.mail.wire.endpoint import PROTOCOL_NAMES, USUAL_PORTS, Endpoint, ProviderHints
from eddymail.mail.wire.protocolerrors import ResponseTooLarge, UnexpectedGreeting
from eddymail.mail.wire.refusals import explain_refusal
from eddymail.patterns import LazyPattern

NETWORK_HINT = (
    "check the server name, the port and that a firewall allows outgoing connections to it"
)
CA_HINT = (
    "the certificate is not trusted (self-signed or from a company CA): "
    "pass --ca-file PATH with the CA certificate"
)
HOSTNAME_HINT = "the certificate is for another host name: check --host"
STARTTLS_HINT = (
    "the server does not offer STARTTLS on this port: use --security ssl with the SSL port, "
    "or ask the administrator"
)


def classify(
    exc: BaseException,
    *,
    protocol: str,
    operation: str,
    endpoint: Endpoint,
    hints: ProviderHints,
    secrets: Iterable[str] = (),
    detail: str | None = None,
) -> MailServerError:
    """Return a :class:`MailServerError` describing ``exc`` raised during ``operation``.

    ``secrets`` (the password, normally) are replaced by asterisks wherever they would appear,
    in any encoding a client may have put on the wire. ``detail`` adds context to the message,
    e.g. ``'folder "Archive"'``.
    """
    secrets = [s for s in secrets if s]
    if isinstance(exc, MailServerError):
        return exc
    answer = redact(answer_of(exc), secrets, login=endpoint.login)
    summary, hint, tls = _diagnose(exc, answer, protocol, operation, endpoint, hints)
    where = f"{_label(protocol, operation)} with {endpoint.address}"
    if detail:
        where += f" ({detail})"
    message = redact(f"{where} failed: {summary}.", secrets, login=endpoint.login)
    return MailServerError(message, operation=operation, answer=answer, hint=hint, tls=tls)


def starttls_unavailable(
    protocol: str, endpoint: Endpoint, answer: str, *, offered: bool
) -> MailServerError:
    """The error for a configured STARTTLS that the server does not offer or refuses.

    The clients raise it *before* any password is sent: a configured STARTTLS is mandatory.
    """
    name = PROTOCOL_NAMES.get(protocol, protocol.upper())
    what = "refused STARTTLS" if offered else "does not offer STARTTLS"
    ssl_port = USUAL_PORTS.get(protocol, (None, None))[0]
    hint = STARTTLS_HINT + (f" (the usual {name} SSL port is {ssl_port})" if ssl_port else "")
    return MailServerError(
        f"{name} STARTTLS with {endpoint.address} failed: the server {what}; "
        "eddymail will not log in over an unencrypted connection.",
        operation=f"{protocol} starttls",
        answer=answer,
        hint=hint,
        tls=True,
    )


def deadline_reached(protocol: str, operation: str, endpoint: Endpoint) -> MailServerError:
    """The error for a session its :class:`~eddymail.mail.wire.endpoint.Watchdog` cut off."""
    return MailServerError(
        f"{_label(protocol, operation)} with {endpoint.address} failed: the run reached its "
        "deadline while the server was still busy, so the connection was cut; nothing "
        "unfinished was lost, the rest is taken next run.",
        operation=operation,
        answer="deadline reached",
        hint="the server answers very slowly or keeps talking without end; if the runs are "
        "often this long, raise [fetch] deadline in the configuration",
    )


def _label(protocol: str, operation: str) -> str:
    name = PROTOCOL_NAMES.get(protocol, protocol.upper())
    step = operation.split(" ", 1)[1] if operation.startswith(protocol + " ") else operation
    return f"{name} {step}"


def _is_setup(operation: str) -> bool:
    """Steps before login, where network and port mistakes show up."""
    return operation.rsplit(" ", 1)[-1] in {"connect", "greeting", "starttls", "setup"}


def _diagnose(
    exc: BaseException,
    answer: str,
    protocol: str,
    operation: str,
    endpoint: Endpoint,
    hints: ProviderHints,
) -> tuple[str, str | None, bool]:
    import smtplib  # (here: a run that fails at nothing does not load it)

    chain = list(causes(exc))
    for link in chain:
        if isinstance(link, ssl.SSLCertVerificationError):
            return _certificate(link, endpoint)
        if isinstance(link, ResponseTooLarge):
            return (
                f"the server wanted to send more than the limit of {link.limit} bytes in one "
                "answer, so eddymail stopped before reading it",
                "a message bigger than [fetch] max_message_bytes (or a server that misreports "
                "sizes); it stays on the server untouched: raise max_message_bytes to take "
                "it, or remove it with a mail client",
                False,
            )
    if isinstance(exc, UnexpectedGreeting):
        return _wrong_protocol(protocol, endpoint, exc.greeting, tls=False)
    if isinstance(exc, smtplib.SMTPConnectError) and exc.smtp_code == -1:
        # smtplib found no reply code in the greeting: not an SMTP server.
        return _wrong_protocol(protocol, endpoint, answer, tls=False)
    for link in chain:
        if isinstance(link, TimeoutError):
            return _timeout(protocol, operation, endpoint, answer)
        if isinstance(link, ConnectionRefusedError):
            return (
                f"connection refused (nothing listens on port {endpoint.port})",
                NETWORK_HINT + _usual_ports(protocol),
                False,
            )
        if isinstance(link, socket.gaierror):
            return (f"the host name {endpoint.host} could not be resolved", NETWORK_HINT, False)
        if isinstance(link, ssl.SSLError) and not isinstance(
            link, ssl.SSLEOFError | ssl.SSLZeroReturnError
        ):
            return _tls_failure(link, protocol, endpoint)
    if "timed out" in answer.lower():
        return _timeout(protocol, operation, endpoint, answer)
    handshake = operation.endswith("starttls") or (
        endpoint.security == "ssl" and operation.endswith("connect")
    )
    if handshake and any(
        isinstance(link, ssl.SSLEOFError | ConnectionResetError) for link in chain
    ):
        # A peer that hangs up during the handshake usually is not a TLS port at all.
        _, hint, _ = _wrong_protocol(protocol, endpoint, "", tls=True)
        return "the server closed the connection during the TLS handshake", hint, True
    if _CLOSED.search(answer):
        return _closed(operation)
    if operation.endswith("starttls"):
        ssl_port = USUAL_PORTS.get(protocol, (None, None))[0]
        return (
            "the server refused STARTTLS; eddymail will not log in over an unencrypted connection",
            STARTTLS_HINT + (f" (usually port {ssl_port})" if ssl_port else ""),
            True,
        )
    for link in chain:
        # smtplib's exceptions are OSErrors too, but they carry the server's answer.
        if isinstance(link, OSError) and not is_server_answer(link):
            return _network(link, protocol, operation, endpoint)
    if is_server_answer(exc):
        if operation.endswith(("connect", "greeting")) and _looks_foreign(protocol, answer):
            return _wrong_protocol(protocol, endpoint, answer, tls=False)
        return explain_refusal(answer, protocol, operation, hints)
    return (f"unexpected error ({type(exc).__name__})", None, False)


# How imaplib, poplib and smtplib report a connection the server closed.
_CLOSED = LazyPattern(r"socket error: EOF|^-ERR EOF$|Connection unexpectedly closed", re.I)


def _closed(operation: str) -> tuple[str, str | None, bool]:
    if _is_setup(operation):
        return "the server closed the connection", NETWORK_HINT, False
    return (
        "the server closed the connection",
        "the connection broke in the middle of the session (server restart or idle limit): "
        "try again",
        False,
    )


def _certificate(exc: ssl.SSLCertVerificationError, endpoint: Endpoint) -> tuple[str, str, bool]:
    text = (exc.verify_message or str(exc)).lower()
    if "mismatch" in text or "not valid for" in text:
        return (
            f"the server's TLS certificate is not valid for the name {endpoint.host}",
            HOSTNAME_HINT + " (use the host name the provider documents, not an IP address "
            "or an alias)",
            True,
        )
    if "expired" in text or "not yet valid" in text:
        return (
            "the server's TLS certificate is outside its validity period",
            "the certificate has expired or is not valid yet (or this computer's clock is "
            "wrong): ask the administrator to renew it",
            True,
        )
    if endpoint.ca_file:
        hint = (
            f"the certificate is not signed by the CA in {endpoint.ca_file} nor by one in the "
            "system trust store: check that --ca-file holds the server's CA certificate"
        )
    else:
        hint = CA_HINT
    return "the server's TLS certificate is not trusted", hint, True


def _timeout(
    protocol: str, operation: str, endpoint: Endpoint, answer: str
) -> tuple[str, str, bool]:
    unit = "second" if endpoint.timeout == 1 else "seconds"
    summary = f"no answer within {endpoint.timeout:g} {unit}"
    if not _is_setup(operation):
        return (
            summary,
            "the server stopped answering in the middle of the session: try again later; if "
            "it keeps happening on large mail, raise the timeout",
            False,
        )
    hint = NETWORK_HINT
    plain_port = USUAL_PORTS.get(protocol, (0, 0))[1]
    if endpoint.security != "ssl" and endpoint.port in {993, 995, 465}:
        # A TLS port waits for our handshake while we wait for its greeting: both time out.
        hint = (
            f"port {endpoint.port} expects TLS from the first byte: use --security ssl "
            f"(or --security {endpoint.security} with port {plain_port}); otherwise {hint}"
        )
    # A TCP connect that times out is not a TLS problem; a stalled handshake is.
    return summary, hint, operation.endswith("starttls") or "handshake" in answer.lower()


def _usual_ports(protocol: str) -> str:
    if protocol not in USUAL_PORTS:
        return ""
    ssl_port, plain_port = USUAL_PORTS[protocol]
    name = PROTOCOL_NAMES[protocol]
    return (
        f" (the usual {name} ports are {ssl_port} with --security ssl and {plain_port} with "
        "--security starttls)"
    )


def _wrong_protocol(
    protocol: str, endpoint: Endpoint, greeting: str, *, tls: bool
) -> tuple[str, str, bool]:
    name = PROTOCOL_NAMES.get(protocol, protocol.upper())
    guess = _guess_protocol(greeting)
    if tls:
        summary = "the server does not speak TLS on this port"
    elif guess and guess != protocol:
        other = PROTOCOL_NAMES[guess]
        article = "a" if other == "POP3" else "an"
        summary = f"the server greeted like {article} {other} server, not {name}"
    else:
        summary = f"the server's greeting is not {name}"
    hint = f"the port does not match the protocol or --security{_usual_ports(protocol)}"
    ssl_port, plain_port = USUAL_PORTS.get(protocol, (0, 0))
    if tls and endpoint.port == plain_port:
        hint = (
            f"port {plain_port} is the plain/STARTTLS port: use --security starttls, or port "
            f"{ssl_port} with --security ssl"
        )
    return summary, hint, tls


def _guess_protocol(greeting: str) -> str | None:
    if re.match(r"\*\s+(OK|PREAUTH|BYE)\b", greeting, re.I):
        return "imap"
    if re.match(r"[+-](OK|ERR)\b", greeting, re.I):
        return "pop3"
    if re.match(r"\d{3}[ -]", greeting):
        return "smtp"
    return None


def _looks_foreign(protocol: str, answer: str) -> bool:
    guess = _guess_protocol(answer)
    return guess is not None and guess != protocol


def _tls_failure(
    exc: ssl.SSLError, protocol: str, endpoint: Endpoint
) -> tuple[str, str | None, bool]:
    text = f"{exc.reason or ''} {exc}".lower()
    if any(
        marker in text
        for marker in (
            "wrong_version_number",
            "wrong version number",
            "record layer failure",
            "packet length too long",
            "http request",
            "unknown protocol",
            "record_layer_failure",
            "packet_length_too_long",
        )
    ):
        return _wrong_protocol(protocol, endpoint, "", tls=True)
    if any(
        marker in text
        for marker in (
            "unsupported protocol",
            "unsupported_protocol",
            "protocol version",
            "no protocols available",
            "handshake failure",
            "dh key too small",
            "legacy renegotiation",
        )
    ):
        return (
            "the TLS handshake failed",
            "the server offers only outdated TLS (older than TLS 1.2, or weak keys), which "
            "eddymail refuses: ask the administrator to update the server's TLS settings",
            True,
        )
    return "the TLS handshake failed", None, True


def _network(
    exc: OSError, protocol: str, operation: str, endpoint: Endpoint
) -> tuple[str, str | None, bool]:
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        summary = "the server closed the connection"
    elif exc.strerror:
        summary = exc.strerror[0].lower() + exc.strerror[1:]
    else:
        summary = "a network error occurred"
    if _is_setup(operation):
        return summary, NETWORK_HINT, False
    return summary, "the connection broke in the middle of the session: try again", False
