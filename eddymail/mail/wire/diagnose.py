"""Turn what the network, TLS or a mail server said into an error a person can act on.

The clients catch socket, ssl, imaplib, poplib and smtplib exceptions at each step and pass
them to :func:`classify`, which returns one :class:`MailServerError` carrying

* ``message`` — a sentence naming the step and ``host:port``,
* ``answer`` — the server's own words (or the network stack's), passwords scrubbed,
* ``hint`` — the likely cause and what to do, when the answer is recognisable,
* ``tls`` — whether the failure was about TLS.

Provider texts are matched loosely and case-insensitively: providers reword them often, and a
missed match only costs the hint, never the answer.
"""

from __future__ import annotations

import ast
import base64
import imaplib
import poplib
import re
import smtplib
import socket
import ssl
from collections.abc import Iterable, Iterator

from eddymail.errors import MailServerError
from eddymail.mail.wire.endpoint import Endpoint, ProviderHints

#: The customary ports: (TLS from the first byte, plain with STARTTLS).
USUAL_PORTS: dict[str, tuple[int, int]] = {
    "imap": (993, 143),
    "pop3": (995, 110),
    "smtp": (465, 587),
}
_PROTOCOL_NAMES = {"imap": "IMAP", "pop3": "POP3", "smtp": "SMTP"}
# What the mailbox settings of providers call the access switch.
_ACCESS_NAMES = {"imap": "IMAP", "pop3": "POP", "smtp": "SMTP"}

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
WRONG_CREDENTIALS = "The login or password is wrong."

_SCRUBBED = "********"


class Secret:
    """A password that never shows itself: not in repr, str, logs or tracebacks with locals."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value or ""

    def reveal(self) -> str:
        """The password itself, for the one call that sends it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__


class ResponseTooLarge(Exception):
    """The server announced (or sent) more bytes in one response than the client accepts.

    Raised *before* the bytes are read, so a hostile or broken server cannot make eddymail
    allocate gigabytes. The connection is unusable afterwards (the bytes are still coming).
    """

    def __init__(self, size: int | None, limit: int, what: str = "response") -> None:
        amount = f"{size} bytes" if size is not None else f"more than {limit} bytes"
        super().__init__(f"the server announced a {what} of {amount}, over the limit of "
                         f"{limit} bytes")
        self.size = size
        self.limit = limit


class UnexpectedGreeting(Exception):
    """The first line on a connection is not the greeting of the expected protocol."""

    def __init__(self, protocol: str, greeting: str) -> None:
        super().__init__(f"unexpected greeting: {greeting}")
        self.protocol = protocol
        self.greeting = greeting


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
    name = _PROTOCOL_NAMES.get(protocol, protocol.upper())
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


def redact(text: str, secrets: Iterable[str], *, login: str = "") -> str:
    """Replace every secret in ``text``, also as quoted or SASL PLAIN base64 on the wire."""
    for secret in secrets:
        if not secret:
            continue
        forms = {secret, secret.replace("\\", "\\\\").replace('"', '\\"')}
        for raw in (f"\0{login}\0{secret}", f"{login}\0{login}\0{secret}", secret):
            forms.add(base64.b64encode(raw.encode("utf-8")).decode("ascii"))
        for form in sorted(forms, key=len, reverse=True):
            if len(form) >= 8:
                text = text.replace(form, _SCRUBBED)
            else:
                # A short password is likely to occur inside ordinary words ("x" in a host
                # name); scrub it where it stands alone.
                pattern = rf"(?<![\w.-]){re.escape(form)}(?![\w.-])"
                text = re.sub(pattern, _SCRUBBED, text)
    return text


def answer_of(exc: BaseException) -> str:
    """The words of the server (or of the network stack) inside ``exc``, as one line."""
    # imaplib re-raises its errors with the command name in front; the size is what matters.
    too_large = next((link for link in _chain(exc) if isinstance(link, ResponseTooLarge)), None)
    if too_large is not None:
        text = str(too_large)
    elif isinstance(exc, UnexpectedGreeting):
        text = exc.greeting
    elif isinstance(exc, ssl.SSLCertVerificationError):
        text = f"certificate verify failed: {exc.verify_message or exc.reason}"
    elif isinstance(exc, ssl.SSLError):
        text = re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc))
    elif isinstance(exc, smtplib.SMTPRecipientsRefused):
        text = "; ".join(f"{rcpt}: {_smtp_reply(*reply)}" for rcpt, reply in exc.recipients.items())
    elif isinstance(exc, smtplib.SMTPResponseException):
        text = _smtp_reply(exc.smtp_code, exc.smtp_error)
    elif isinstance(exc, imaplib.IMAP4.error | poplib.error_proto):
        text = _imap_text(exc.args[0]) if exc.args else type(exc).__name__
    elif isinstance(exc, UnicodeError):
        # UnicodeError.object would hold the whole command line, password included.
        text = "text that cannot be encoded for this server"
    elif isinstance(exc, OSError):
        text = str(exc) or type(exc).__name__
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _smtp_reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}" if code and code > 0 else text


def _imap_text(value: object) -> str:
    """Plain text from imaplib's mix of bytes and ``"... [b'...']"`` reprs."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    text = str(value)

    def unrepr(match: re.Match[str]) -> str:
        try:
            value = ast.literal_eval(match.group(1))
        except (ValueError, SyntaxError):
            return match.group(1)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else match.group(1)

    text = re.sub(r"\[(b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\")\]", unrepr, text)
    text = re.sub(r"(b'(?:[^'\\]|\\.)*'|b\"(?:[^\"\\]|\\.)*\")", unrepr, text)
    # "UID command error: BAD Error in ..." -> "BAD Error in ..."
    text = re.sub(r"^(?:command: \w+ => )?\w+ command error: ", "", text)
    return text


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes: stdlib clients wrap socket errors (smtplib, imaplib.abort)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _label(protocol: str, operation: str) -> str:
    name = _PROTOCOL_NAMES.get(protocol, protocol.upper())
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
    chain = list(_chain(exc))
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
        if isinstance(link, OSError) and not _is_server_answer(link):
            return _network(link, protocol, operation, endpoint)
    if _is_server_answer(exc):
        if operation.endswith(("connect", "greeting")) and _looks_foreign(protocol, answer):
            return _wrong_protocol(protocol, endpoint, answer, tls=False)
        return _server_answer(answer, protocol, operation, hints)
    return (f"unexpected error ({type(exc).__name__})", None, False)


# How imaplib, poplib and smtplib report a connection the server closed.
_CLOSED = re.compile(r"socket error: EOF|^-ERR EOF$|Connection unexpectedly closed", re.I)


def _closed(operation: str) -> tuple[str, str | None, bool]:
    if _is_setup(operation):
        return "the server closed the connection", NETWORK_HINT, False
    return (
        "the server closed the connection",
        "the connection broke in the middle of the session (server restart or idle limit): "
        "try again",
        False,
    )


def _is_server_answer(exc: BaseException) -> bool:
    return isinstance(exc, imaplib.IMAP4.error | poplib.error_proto | smtplib.SMTPException)


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
    name = _PROTOCOL_NAMES[protocol]
    return (
        f" (the usual {name} ports are {ssl_port} with --security ssl and {plain_port} with "
        "--security starttls)"
    )


def _wrong_protocol(
    protocol: str, endpoint: Endpoint, greeting: str, *, tls: bool
) -> tuple[str, str, bool]:
    name = _PROTOCOL_NAMES.get(protocol, protocol.upper())
    guess = _guess_protocol(greeting)
    if tls:
        summary = "the server does not speak TLS on this port"
    elif guess and guess != protocol:
        other = _PROTOCOL_NAMES[guess]
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


# Provider wordings, matched case-insensitively against the server's answer.
_WEB_LOGIN = re.compile(r"log ?in via your web browser|web login required|WEBALERT", re.I)
_BASIC_AUTH_OFF = re.compile(
    r"basic auth\w* (is )?disabled|SmtpClientAuthentication is disabled|5\.7\.139", re.I
)
_APP_PASSWORD = re.compile(
    r"application[- ]specific password|app(lication)? password|parol prilozheniya"
    r"|пароль приложения|access rights to this service",
    re.I,
)
_ACCESS_DISABLED = re.compile(
    r"not enabled for (imap|pop)|enable (your account for )?(imap|pop)"
    r"|\b(imap|pop3?)\b[^.]{0,30}\b(is |are |has been )?(disabled|not enabled|not allowed|"
    r"switched off|turned off)"
    r"|\b(imap|pop3?)\b[^.]{0,40}(отключ|выключ|запрещ)",
    re.I,
)
_CREDENTIALS = re.compile(
    r"AUTHENTICATIONFAILED|AUTHORIZATIONFAILED|\[AUTH\]|invalid credentials|login failure"
    r"|authentication (failed|unsuccessful)|credentials invalid|password (is )?(wrong|incorrect)"
    r"|not accepted|bad (user ?name|password)|invalid (user|password|login)|^5\.7\.8|^535\b",
    re.I,
)
_PLAINTEXT_REFUSED = re.compile(
    r"PRIVACYREQUIRED|plaintext auth\w* (is )?(disallowed|disabled|not allowed)"
    r"|must issue a STARTTLS|encryption required|LOGINDISABLED|^538\b",
    re.I,
)
_TEMPORARY = re.compile(
    r"\[UNAVAILABLE\]|\[IN-USE\]|\[LOGIN-DELAY\]|\[SYS/TEMP\]|^4\d\d\b|try again later", re.I
)


_NO_FOLDER = re.compile(r"NONEXISTENT|doesn't exist|does not exist|no such (mailbox|folder)", re.I)


def _server_answer(
    answer: str, protocol: str, operation: str, hints: ProviderHints
) -> tuple[str, str | None, bool]:
    access = _ACCESS_NAMES.get(protocol, protocol.upper())
    provider = hints.provider or "The provider"
    login_step = operation.endswith(("login", "auth"))
    if _WEB_LOGIN.search(answer):
        return (
            "the provider blocked the login",
            f"{provider} wants a confirmation: sign in to the webmail in a browser once, "
            "confirm the blocked sign-in was you, then try again (an app password avoids this)",
            False,
        )
    if _BASIC_AUTH_OFF.search(answer):
        return (
            "the provider does not accept passwords for this mailbox",
            "password logins (basic authentication) are switched off for this mailbox or "
            f"organisation: ask the administrator to allow {access} with a password for it",
            False,
        )
    if _APP_PASSWORD.search(answer):
        return "the server requires an app password", _app_password_hint(provider), False
    if protocol in ("imap", "pop3") and _ACCESS_DISABLED.search(answer):
        hint = f"enable {access} access in the mailbox settings"
        if hints.access_setting:
            hint += f" ({hints.access_setting})"
        if _CREDENTIALS.search(answer):
            # Yandex says "Invalid credentials or IMAP is disabled" for both causes.
            setting = f" ({hints.access_setting})" if hints.access_setting else ""
            hint = (
                f"Either the login or password is wrong, or {access} access is switched off: "
                f"enable it in the mailbox settings{setting}."
            )
            if hints.app_password:
                hint += f" {_app_password_hint(provider)}"
            return f"the server rejected the login or {access} access is disabled", hint, False
        return f"{access} access is disabled for this mailbox", hint, False
    if _PLAINTEXT_REFUSED.search(answer):
        ssl_port, plain_port = USUAL_PORTS.get(protocol, (0, 0))
        return (
            "the server refuses passwords over an unencrypted connection",
            f"use --security starttls (port {plain_port}) or --security ssl (port {ssl_port})",
            False,
        )
    if _TEMPORARY.search(answer):
        return (
            "the server reported a temporary problem",
            "the mailbox is busy or the server is overloaded: it will be retried on the next run",
            False,
        )
    if login_step or _CREDENTIALS.search(answer):
        return "the server rejected the login", _auth_hint(protocol, hints), False
    if protocol == "smtp":
        return _smtp_answer(answer, operation)
    if protocol == "imap" and _NO_FOLDER.search(answer):
        return (
            "the folder does not exist",
            "check the folder name (--folder); INBOX always exists, other names are "
            "case-sensitive and may be localised",
            False,
        )
    return "the server answered with an error", None, False


def _app_password_hint(provider: str) -> str:
    return (
        f"{provider} needs an app password (2-step verification on, then create an app "
        "password) — not your normal mailbox password."
    )


def _auth_hint(protocol: str, hints: ProviderHints) -> str:
    parts = [WRONG_CREDENTIALS]
    if hints.app_password:
        parts.append(_app_password_hint(hints.provider or "This provider"))
    if protocol in ("imap", "pop3") and hints.access_setting:
        access = _ACCESS_NAMES[protocol]
        parts.append(
            f"Also check that {access} access is enabled in the mailbox settings "
            f"({hints.access_setting})."
        )
    return " ".join(parts)


def _smtp_answer(answer: str, operation: str) -> tuple[str, str | None, bool]:
    lowered = answer.lower()
    if re.search(r"^530\b|authentication required|auth(entication)? first", answer, re.I):
        return (
            "the server requires a login",
            "set a password for the outgoing mailbox (SMTP login)",
            False,
        )
    if "relay" in lowered:
        return (
            "the server refuses to relay the message",
            "the outgoing mailbox needs a login (a password), or the sender address is not one "
            "this server sends for",
            False,
        )
    if operation.endswith("mail from") or re.search(
        r"sender address rejected|not owned|sendasdenied|sender .*not allowed", answer, re.I
    ):
        return (
            "the server refused the sender address",
            "send from the mailbox's own address (or an alias the provider allows for this login)",
            False,
        )
    if re.search(r"^552\b|5\.3\.4|size|too (big|large)", answer, re.I):
        return "the message is too large for the server", "the server's size limit applies", False
    if re.search(
        r"5\.1\.[0-3]|user unknown|no such user|does not exist|mailbox unavailable", answer, re.I
    ):
        return "a recipient address was refused", "check the recipient address", False
    if re.search(r"spam|policy|blocked|5\.7\.1\b", answer, re.I):
        return (
            "the server refused the message by policy",
            "the provider's filters or sending limits rejected it; the answer says which",
            False,
        )
    return "the server answered with an error", None, False
