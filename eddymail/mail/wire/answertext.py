"""The server's own words inside an exception, as one line, with every secret scrubbed.

imaplib, poplib and smtplib each wrap what a server said differently (bytes, reprs of bytes,
reply codes, chained socket errors); :func:`answer_of` reads them all the same way, and
:func:`redact` removes a password in any form a client may have put on the wire.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Iterable, Iterator

from eddymail.mail.wire.protocolerrors import ResponseTooLarge, UnexpectedGreeting

_SCRUBBED = "********"


def redact(text: str, secrets: Iterable[str], *, login: str = "") -> str:
    """Replace every secret in ``text``, also as quoted or SASL PLAIN base64 on the wire."""
    import base64

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
    # The protocol modules are imported when an error is being told (a session has loaded
    # its own already): a cron run that fails at nothing does not load all three.
    import imaplib
    import poplib
    import smtplib

    # imaplib re-raises its errors with the command name in front; the size is what matters.
    too_large = next((link for link in causes(exc) if isinstance(link, ResponseTooLarge)), None)
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
        import ast

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


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and its causes: stdlib clients wrap socket errors (smtplib, imaplib.abort)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 8:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_server_answer(exc: BaseException) -> bool:
    """Whether ``exc`` carries a mail server's answer (not a network or TLS failure)."""
    import imaplib
    import poplib
    import smtplib

    return isinstance(exc, imaplib.IMAP4.error | poplib.error_proto | smtplib.SMTPException)
