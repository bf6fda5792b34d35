"""``channel test``: can this mailbox receive and send? The seed's "Test connection".

Incoming: connect, TLS (certificate and host name verified), login, then SELECT the folder
(IMAP, read-only so nothing is marked) or STAT (POP3). Outgoing: connect, TLS, login and send
a test letter with a unique token to the channel's own address, or only log in with
``send=False``. Every failed check is written to the error log with the server's answer and
the likely cause.

A password kept by a keyring backend that stores it unencrypted (keyring picks
``keyrings.alt``'s PlaintextKeyring silently where no desktop keyring exists) adds a
``keyring`` check that is not ok and marked ``warning``: it is reported, but the channel
still counts as working when its mail checks pass, since mail does flow.

A channel that signs in with OAuth 2.0 gets a ``sign-in`` check first: its access token is
fetched (refreshed if due) and its expiry and granted scopes are shown, never the token.
"""

from __future__ import annotations

import contextlib
import secrets as token_source
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eddymail import secrets
from eddymail.db.connection import database_proxy
from eddymail.db.models import Channel, Department, OutboxItem
from eddymail.errors import (
    EddymailError,
    KeyringUnavailableError,
    MailServerError,
    OAuthError,
    SecretError,
)
from eddymail.mail.message.compose import OutgoingMail
from eddymail.mail.wire.endpoint import ProviderHints
from eddymail.mail.wire.imap import ImapClient
from eddymail.mail.wire.pop3 import Pop3Client
from eddymail.mail.wire.smtp import SmtpClient
from eddymail.services import errorlog
from eddymail.services.channels.endpoints import incoming_endpoint, provider_hints_of, smtp_endpoint
from eddymail.services.channels.lookup import find_channel, password_source
from eddymail.services.channels.signin import (
    Credential,
    SignInStatus,
    sign_in_status,
    with_sign_in,
)
from eddymail.services.outgoing import notifications
from eddymail.services.outgoing.outbox import FAILED, queue_mail, send_one

#: Runs a session with the channel's credential: (protocol, session) -> the session's result.
SignedIn = Callable[[str, Callable[[Credential], Any]], Any]


@dataclass(frozen=True)
class CheckResult:
    """One check of one channel: what was tried, whether it worked, what the server said."""

    check: str  # password | keyring | incoming | outgoing | settings
    ok: bool
    answer: str
    hint: str | None = None
    operation: str = ""
    warning: bool = False  # a failed check that does not fail the channel (keyring)


@dataclass(frozen=True)
class ChannelTestResult:
    """Every check of one channel."""

    name: str
    ok: bool
    checks: list[CheckResult]
    token: str | None = None  # the token in the test letter, when one was sent
    sign_in: SignInStatus | None = None


def channels_to_test(names: list[str]) -> list[str]:
    """The names of the named channels (each checked to exist), or of every enabled channel
    when none is named."""
    if names:
        return [find_channel(name).name for name in names]
    return [channel.name for channel in
            Channel.select(Channel.name).where(Channel.enabled).order_by(Channel.name)]


def test_channel(name: str, *, send: bool = True, timeout: float = 30.0) -> ChannelTestResult:
    """Run the incoming and outgoing checks of the channel called ``name``.

    A missing keyring backend is not a channel's fault: that ``SecretError`` propagates
    (exit 4). Everything else becomes a failed check and an error-log entry.
    """
    channel = find_channel(name)
    checks: list[CheckResult] = []
    token: str | None = None
    status: SignInStatus | None = None
    oauth = channel.auth_method == "oauth2"
    what = "sign-in" if oauth else "password"
    source = password_source(channel)
    try:
        with contextlib.ExitStack() as stack:
            signed_in: SignedIn
            if oauth:
                status = sign_in_status(channel, timeout=timeout)
                checks.append(CheckResult("sign-in", True, describe_sign_in(status),
                                          operation="oauth"))

                def signed_in(protocol: str, action: Callable[[Credential], Any]) -> Any:
                    return with_sign_in(channel, timeout=timeout, protocol=protocol,
                                        action=action)
            else:
                # Read once for both checks: a password command may ask a hardware token.
                password = stack.enter_context(secrets.password_in_use(source))

                def signed_in(protocol: str, action: Callable[[Credential], Any]) -> Any:
                    return action(password)
            if not source.command:
                keyring_check = _keyring_check(oauth)
                if keyring_check is not None:
                    checks.append(keyring_check)
            hints = provider_hints_of(channel)
            if channel.protocol != "none":
                checks.append(_incoming(channel, hints, timeout, signed_in))
            if channel.smtp_host:
                token = token_source.token_hex(8) if send else None
                checks.append(_outgoing(channel, hints, timeout, token, signed_in))
    except KeyringUnavailableError:
        raise
    except (SecretError, OAuthError) as error:  # no credential: nothing else was tried
        checks.append(_failed(channel, what, "oauth" if oauth else what, error))
        return ChannelTestResult(channel.name, False, checks)
    if not checks:
        checks.append(
            CheckResult(
                "settings",
                False,
                "The channel has neither incoming nor outgoing servers.",
                "Add them with eddymail channel edit.",
            )
        )
    return ChannelTestResult(channel.name, all(c.ok or c.warning for c in checks), checks, token,
                             status)


def describe_sign_in(status: SignInStatus) -> str:
    """The sign-in check's answer: method, where the tokens are, expiry, scopes."""
    parts = [f"OAuth 2.0 ({status.flow} flow), tokens "
             + ("from the password command" if status.source == "command" else "in the keyring")]
    if status.expires_at is not None:
        parts.append(f"access token valid until {status.expires_at.isoformat(' ')} UTC"
                     + (" (refreshed now)" if status.refreshed else ""))
    parts.append("granted scopes: " + (" ".join(status.scopes) if status.scopes
                                       else "(not reported)"))
    return "; ".join(parts)


def _keyring_check(oauth: bool) -> CheckResult | None:
    """A warning row when the keyring keeps the password (or an OAuth channel's tokens)
    unencrypted on disk; else None."""
    insecure = secrets.insecure_keyring_backends()
    if not insecure:
        return None
    what, command = (("the OAuth tokens are", "a command that prints a token")
                     if oauth else ("the password is", "a password command"))
    return CheckResult(
        "keyring", False,
        f"INSECURE: {what} kept unencrypted by {', '.join(insecure)}; anyone who "
        "can read that file can read it. keyring chose this backend because no desktop "
        "keyring is available here.",
        f"Give the channel {command} instead (eddymail channel edit NAME "
        "--password-command 'pass show mail/NAME'), or set PYTHON_KEYRING_BACKEND to an "
        "encrypted backend, then remove the plaintext file.",
        operation="keyring", warning=True,
    )


def _incoming(channel: Channel, hints: ProviderHints, timeout: float,
              signed_in: SignedIn) -> CheckResult:
    protocol = channel.protocol

    def look(credential: Credential) -> str:
        endpoint = incoming_endpoint(channel, timeout)
        where = f"login {endpoint.login} at {endpoint.address}, {endpoint.security}"
        if protocol == "imap":
            with ImapClient(endpoint, credential, hints) as client:
                status = client.select(channel.folder, readonly=True, count_unseen=True)
            return (f"{channel.folder}: {status.exists} message(s), {status.unseen} unread "
                    f"({where})")
        with Pop3Client(endpoint, credential, hints) as client:
            count, size = client.stat()
            client.quit()
        return f"{count} message(s), {size} bytes; POP3 cannot tell which are unread ({where})"

    try:
        answer = signed_in(protocol, look)
    except EddymailError as error:
        return _failed(channel, "incoming", f"{protocol} check", error)
    return CheckResult("incoming", True, answer, operation=f"{protocol} login")


def _outgoing(channel: Channel, hints: ProviderHints, timeout: float, token: str | None,
              signed_in: SignedIn) -> CheckResult:
    if token is None:
        endpoint = smtp_endpoint(channel, timeout)

        def log_in(credential: Credential) -> None:
            with SmtpClient(endpoint, credential, hints):
                pass

        try:
            signed_in("smtp", log_in)
        except EddymailError as error:
            return _failed(channel, "outgoing", "smtp check", error)
        return CheckResult(
            "outgoing", True,
            f"login {endpoint.login} at {endpoint.address} accepted ({endpoint.security}); "
            "no letter sent",
            operation="smtp login",
        )
    # Like every outgoing mail, the test letter is an outbox row; unlike the others it is
    # not retried later (a late test letter proves nothing), so a failure leaves it failed.
    with database_proxy.atomic():
        item = queue_mail(kind="test_letter", channel=channel, mail=_test_letter(channel, token),
                          template="test_letter")
    result = send_one(item.id, timeout=timeout)
    if result is None or not result.sent:
        OutboxItem.update(status=FAILED).where(OutboxItem.id == item.id).execute()
        reason = result.error if result else "claimed by another process"
        return CheckResult("outgoing", False, reason or "not sent", result.hint if result else None,
                           "smtp send")
    return CheckResult(
        "outgoing", True, f"test letter {token} sent to {channel.email}: {result.answer}",
        operation="smtp send",
    )


def _test_letter(channel: Channel, token: str) -> OutgoingMail:
    """The ``test_letter`` template, rendered for this channel."""
    department = Department.get_by_id(channel.department_id)
    rendered = notifications.render_for_department("test_letter", department, {
        "token": token,
        "channel": {"name": channel.name, "email": channel.email},
    }, even_if_off=True)
    return notifications.automatic_mail(channel, department, rendered, to=channel.email,
                                        extra_headers={"X-Eddymail-Test": token})


def _failed(channel: Channel, check: str, operation: str, error: EddymailError) -> CheckResult:
    if isinstance(error, MailServerError) and error.operation:
        operation = error.operation
    # The password or token, when the error happened while it was in use, comes with it.
    entry = errorlog.record_failure(channel=channel, operation=operation, error=error,
                                    secrets=secrets.carried_by(error))
    answer = entry.answer or entry.message
    return CheckResult(check, False, answer, entry.hint or None, operation)
