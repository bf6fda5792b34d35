"""What a mail server's refusal means, and what to do about it.

Provider texts are matched loosely and case-insensitively: providers reword them often, and a
missed match only costs the hint, never the answer. :func:`explain_refusal` is asked by
:func:`eddymail.mail.wire.diagnose.classify` once it knows the failure is a server's answer
(not the network or TLS).
"""

from __future__ import annotations

import re

from eddymail.mail.wire.endpoint import USUAL_PORTS, ProviderHints
from eddymail.patterns import LazyPattern

# What the mailbox settings of providers call the access switch.
_ACCESS_NAMES = {"imap": "IMAP", "pop3": "POP", "smtp": "SMTP"}

WRONG_CREDENTIALS = "The login or password is wrong."


# Provider wordings, matched case-insensitively against the server's answer.
_WEB_LOGIN = LazyPattern(r"log ?in via your web browser|web login required|WEBALERT", re.I)
_BASIC_AUTH_OFF = LazyPattern(
    r"basic auth\w* (is )?disabled|SmtpClientAuthentication is disabled|5\.7\.139", re.I
)
_APP_PASSWORD = LazyPattern(
    r"application[- ]specific password|app(lication)? password|parol prilozheniya"
    r"|пароль приложения|access rights to this service",
    re.I,
)
_ACCESS_DISABLED = LazyPattern(
    r"not enabled for (imap|pop)|enable (your account for )?(imap|pop)"
    r"|\b(imap|pop3?)\b[^.]{0,30}\b(is |are |has been )?(disabled|not enabled|not allowed|"
    r"switched off|turned off)"
    r"|\b(imap|pop3?)\b[^.]{0,40}(отключ|выключ|запрещ)",
    re.I,
)
_CREDENTIALS = LazyPattern(
    r"AUTHENTICATIONFAILED|AUTHORIZATIONFAILED|\[AUTH\]|invalid credentials|login failure"
    r"|authentication (failed|unsuccessful)|credentials invalid|password (is )?(wrong|incorrect)"
    r"|not accepted|bad (user ?name|password)|invalid (user|password|login)|^5\.7\.8|^535\b",
    re.I,
)
_PLAINTEXT_REFUSED = LazyPattern(
    r"PRIVACYREQUIRED|plaintext auth\w* (is )?(disallowed|disabled|not allowed)"
    r"|must issue a STARTTLS|encryption required|LOGINDISABLED|^538\b",
    re.I,
)
_TEMPORARY = LazyPattern(
    r"\[UNAVAILABLE\]|\[IN-USE\]|\[LOGIN-DELAY\]|\[SYS/TEMP\]|^4\d\d\b|try again later", re.I
)
_NO_FOLDER = LazyPattern(r"NONEXISTENT|doesn't exist|does not exist|no such (mailbox|folder)", re.I)


def explain_refusal(
    answer: str, protocol: str, operation: str, hints: ProviderHints
) -> tuple[str, str | None, bool]:
    """(summary, hint, about TLS) for a server that answered ``answer`` to ``operation``."""
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
