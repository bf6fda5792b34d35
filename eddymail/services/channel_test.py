"""``channel test``: can this mailbox receive and send? The seed's "Test connection".

Incoming: connect, TLS (certificate and host name verified), login, then SELECT the folder
(IMAP, read-only so nothing is marked) or STAT (POP3). Outgoing: connect, TLS, login and send
a test letter with a unique token to the channel's own address, or only log in with
``send=False``. Every failed check is written to the error log with the server's answer and
the likely cause.
"""

from __future__ import annotations

import secrets as token_source
from dataclasses import dataclass

from eddymail import secrets
from eddymail.errors import EddymailError, KeyringUnavailableError, MailServerError, SecretError
from eddymail.mail.compose import OutgoingMail, build_message, make_message_id
from eddymail.mail.endpoint import ProviderHints
from eddymail.mail.imap import ImapClient
from eddymail.mail.pop3 import Pop3Client
from eddymail.mail.smtp import SmtpClient
from eddymail.models import Channel
from eddymail.services import errorlog
from eddymail.services.channels import find_channel, password_source
from eddymail.services.endpoints import incoming_endpoint, provider_hints_of, smtp_endpoint


@dataclass(frozen=True)
class CheckResult:
    """One check of one channel: what was tried, whether it worked, what the server said."""

    check: str  # password | incoming | outgoing
    ok: bool
    answer: str
    hint: str | None = None
    operation: str = ""


@dataclass(frozen=True)
class ChannelTestResult:
    """Every check of one channel."""

    name: str
    ok: bool
    checks: list[CheckResult]
    token: str | None = None  # the token in the test letter, when one was sent


def channels_to_test(names: list[str]) -> list[Channel]:
    """The named channels, or every enabled channel when none is named."""
    if names:
        return [find_channel(name) for name in names]
    return list(Channel.select().where(Channel.enabled).order_by(Channel.name))


def test_channel(
    channel: Channel, *, send: bool = True, timeout: float = 30.0
) -> ChannelTestResult:
    """Run the incoming and outgoing checks of one channel.

    A missing keyring backend is not a channel's fault: that ``SecretError`` propagates
    (exit 4). Everything else becomes a failed check and an error-log entry.
    """
    checks: list[CheckResult] = []
    token: str | None = None
    try:
        password = secrets.get_password(password_source(channel))
    except KeyringUnavailableError:
        raise
    except SecretError as error:
        checks.append(_failed(channel, "password", "password", error, []))
        return ChannelTestResult(channel.name, False, checks)

    hints = provider_hints_of(channel)
    if channel.protocol != "none":
        checks.append(_incoming(channel, password, hints, timeout))
    if channel.smtp_host:
        token = token_source.token_hex(8) if send else None
        checks.append(_outgoing(channel, password, hints, timeout, token))
    if not checks:
        checks.append(
            CheckResult(
                "settings",
                False,
                "The channel has neither incoming nor outgoing servers.",
                "Add them with eddymail channel edit.",
            )
        )
    return ChannelTestResult(channel.name, all(c.ok for c in checks), checks, token)


def _incoming(channel: Channel, password: str, hints: ProviderHints, timeout: float) -> CheckResult:
    protocol = channel.protocol
    try:
        endpoint = incoming_endpoint(channel, timeout)
        if protocol == "imap":
            with ImapClient(endpoint, password, hints) as client:
                status = client.select(channel.folder, readonly=True)
            answer = (
                f"{channel.folder}: {status.exists} message(s), {status.unseen} unread "
                f"(login {endpoint.login} at {endpoint.address}, {endpoint.security})"
            )
        else:
            with Pop3Client(endpoint, password, hints) as client:
                count, size = client.stat()
                client.quit()
            answer = (
                f"{count} message(s), {size} bytes; POP3 cannot tell which are unread "
                f"(login {endpoint.login} at {endpoint.address}, {endpoint.security})"
            )
    except EddymailError as error:
        return _failed(channel, "incoming", f"{protocol} check", error, [password])
    return CheckResult("incoming", True, answer, operation=f"{protocol} login")


def _outgoing(
    channel: Channel, password: str, hints: ProviderHints, timeout: float, token: str | None
) -> CheckResult:
    try:
        endpoint = smtp_endpoint(channel, timeout)
        with SmtpClient(endpoint, password, hints) as client:
            if token is None:
                return CheckResult(
                    "outgoing",
                    True,
                    f"login {endpoint.login} at {endpoint.address} accepted "
                    f"({endpoint.security}); no letter sent",
                    operation="smtp login",
                )
            raw = _test_letter(channel, token)
            reply = client.send(channel.email, [channel.email], raw)
    except EddymailError as error:
        return _failed(channel, "outgoing", "smtp check", error, [password])
    return CheckResult(
        "outgoing",
        True,
        f"test letter {token} sent to {channel.email}: {reply}",
        operation="smtp send",
    )


def _test_letter(channel: Channel, token: str) -> bytes:
    domain = channel.email.rpartition("@")[2]
    mail = OutgoingMail(
        from_address=channel.email,
        from_name=channel.display_name or "eddymail",
        to=[channel.email],
        cc=[],
        subject=f"eddymail test letter {token}",
        body_text=(
            f"This letter was sent by `eddymail channel test {channel.name}` to check that "
            f"the mailbox {channel.email} can send mail.\n\nToken: {token}\n"
        ),
        automatic=True,
        extra_headers={"X-Eddymail-Test": token},
    )
    return build_message(mail, message_id=make_message_id(domain))


def _failed(
    channel: Channel, check: str, operation: str, error: EddymailError, known_secrets: list[str]
) -> CheckResult:
    if isinstance(error, MailServerError) and error.operation:
        operation = error.operation
    entry = errorlog.record_failure(
        channel=channel, operation=operation, error=error, secrets=known_secrets
    )
    answer = entry.answer or entry.message
    return CheckResult(check, False, answer, entry.hint or None, operation)
