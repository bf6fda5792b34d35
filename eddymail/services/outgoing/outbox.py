"""The outbox: every outgoing mail is a row first, and is sent after the commit.

A row is written in the same transaction as the ticket message it belongs to, so a crash
can never leave a reply that was recorded but not queued (or sent but not recorded). Sending
happens later (``send_due``), marks the row sent only once the server accepted the mail,
and keeps a failed row queued with its error and a back-off.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

import peewee

from eddymail import secrets
from eddymail.crashpoints import crash_point
from eddymail.db.connection import database_proxy
from eddymail.db.models import Channel, Message, OutboxItem, Ticket, utcnow
from eddymail.errors import EddymailError, MailServerError, ValidationError
from eddymail.mail.message.addresskeys import address_key
from eddymail.mail.message.compose import (
    OutgoingMail,
    build_message,
    envelope_recipients,
    make_message_id,
)
from eddymail.services import errorlog
from eddymail.services.channels.endpoints import provider_hints_of, smtp_endpoint
from eddymail.services.channels.signin import Credential, with_sign_in

log = logging.getLogger("eddymail.outbox")


@dataclass(frozen=True)
class OutboxEntry:
    """An outbox row as shown by ``outbox list``."""

    id: int
    kind: str
    template: str | None
    channel: str | None
    ticket_id: int | None
    recipients: list[str]
    subject: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def queue_mail(
    *,
    kind: str,
    channel: Channel,
    mail: OutgoingMail,
    ticket: Ticket | None = None,
    message: Message | None = None,
    template: str | None = None,
) -> OutboxItem:
    """Compose ``mail`` into its final bytes and queue it; call inside the caller's transaction.

    The Message-ID is minted now, on the channel's domain, so threading headers of the
    customer's answer can be matched to this ticket even before the mail is sent.
    """
    message_id = make_message_id(channel.email)
    raw = build_message(mail, message_id=message_id)
    recipients = envelope_recipients(mail)
    item = OutboxItem.create(
        kind=kind,
        template=template,
        channel=channel,
        ticket=ticket,
        message=message,
        mail_from=channel.email,
        recipients=recipients,
        recipient=address_key(recipients[0]) if recipients else "",
        raw=raw,
        message_id=message_id,
        automatic=mail.automatic,
        next_attempt_at=utcnow(),
    )
    if message is not None and not message.message_id:
        message.message_id = message_id
        message.save()
    return item


# --- sending ---------------------------------------------------------------------------------

QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
MAX_ATTEMPTS = 20
# Waits after the 1st, 2nd, ... failed attempt; the last one repeats.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15),
           timedelta(hours=1), timedelta(hours=3), timedelta(hours=6))
# A row claimed for sending by a process that then died is handed back after this long.
STALE_CLAIM = timedelta(minutes=15)
_PERMANENT = re.compile(r"^\s*5\d\d\b")


@dataclass(frozen=True)
class SendResult:
    """What became of one outbox row in a sending attempt."""

    id: int
    kind: str
    recipients: list[str]
    sent: bool
    status: str
    error: str | None = None
    hint: str | None = None
    answer: str | None = None  # the server's words on acceptance ("250 2.0.0 Ok: queued")


def send_due(*, timeout: float = 30.0, ids: list[int] | None = None,
             include_failed: bool = False, deadline: float | None = None) -> list[SendResult]:
    """Send queued rows whose time has come (or the rows ``ids``, whatever their back-off).

    Each row is claimed first (queued → sending, see ``claim_next``) so two processes, on
    one host or several, never send the same row and share the queue between them; it
    becomes sent only once the server accepted it. A crash in between hands the row back
    after ``STALE_CLAIM``: mail may then go out twice, but is never lost. ``deadline`` (a
    ``time.monotonic()`` value) ends the round; a channel whose server failed is not tried
    again in the same round, so one dead server costs one timeout, not one per row.
    """
    OutboxItem.update(status=QUEUED).where(
        (OutboxItem.status == SENDING) & (OutboxItem.next_attempt_at < utcnow() - STALE_CLAIM)
    ).execute()
    results = []
    unreachable: set[int | None] = set()
    tried: set[int] = set()
    while deadline is None or time.monotonic() < deadline:
        item_id = claim_next(ids=ids, include_failed=include_failed,
                             skip_channels=unreachable, skip_ids=tried)
        if item_id is None:
            break
        tried.add(item_id)
        result = _send_claimed(item_id, timeout=timeout, deadline=deadline)
        results.append(result)
        if not result.sent:
            unreachable.add(OutboxItem.get_by_id(item_id).channel_id)
    return results


def claim_next(*, ids: list[int] | None = None, include_failed: bool = False,
               skip_channels: set[int | None] | frozenset[int | None] = frozenset(),
               skip_ids: set[int] | frozenset[int] = frozenset()) -> int | None:
    """Claim the oldest sendable row for this process (queued → sending); its id, or None.

    PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` in a short transaction, so
    concurrent senders on several hosts each take a different row without waiting for
    each other. SQLite: the transaction itself holds the single write lock.
    """
    now = utcnow()
    query = OutboxItem.select(OutboxItem.id).order_by(OutboxItem.id).limit(1)
    if ids:
        statuses = [QUEUED, FAILED] if include_failed else [QUEUED]
        query = query.where(OutboxItem.id.in_(ids) & OutboxItem.status.in_(statuses))
    else:
        query = query.where((OutboxItem.status == QUEUED) & (OutboxItem.next_attempt_at <= now))
    if skip_ids:
        query = query.where(OutboxItem.id.not_in(list(skip_ids)))
    channels = [channel for channel in skip_channels if channel is not None]
    if channels:
        query = query.where(OutboxItem.channel.is_null() | OutboxItem.channel.not_in(channels))
    if None in skip_channels:
        query = query.where(OutboxItem.channel.is_null(False))
    database = database_proxy.obj
    if not isinstance(database, peewee.SqliteDatabase):
        query = query.for_update(skip_locked=True)
    with database_proxy.atomic():
        row = query.tuples().first()
        if row is None:
            return None
        OutboxItem.update(status=SENDING, next_attempt_at=now).where(
            OutboxItem.id == row[0]).execute()
    return int(row[0])


def send_one(item_id: int, *, timeout: float = 30.0,
             deadline: float | None = None) -> SendResult | None:
    """Claim and send one row; None when another process claimed it first."""
    claimed = OutboxItem.update(status=SENDING, next_attempt_at=utcnow()).where(
        (OutboxItem.id == item_id) & OutboxItem.status.in_([QUEUED, FAILED])
    ).execute()
    if not claimed:
        return None
    return _send_claimed(item_id, timeout=timeout, deadline=deadline)


def _send_claimed(item_id: int, *, timeout: float, deadline: float | None) -> SendResult:
    """Send a row this process claimed; mark it sent, or failed with its back-off."""
    # Imported here: queueing a notification (every new ticket) needs no SMTP client.
    from eddymail.mail.wire.smtp import SmtpClient

    item = OutboxItem.get_by_id(item_id)
    channel = Channel.get_or_none(Channel.id == item.channel_id) if item.channel_id else None
    try:
        if channel is None or not channel.smtp_host:
            raise ValidationError(
                "The channel this mail was queued for is gone or has no SMTP server; "
                "requeue it after fixing the channel with eddymail outbox retry."
            )
        endpoint = dataclasses.replace(smtp_endpoint(channel, timeout), deadline=deadline)
        hints = provider_hints_of(channel)

        def send(credential: Credential) -> str:
            with SmtpClient(endpoint, credential, hints) as client:
                return client.send(item.mail_from, list(item.recipients), bytes(item.raw))

        answer = with_sign_in(channel, timeout=timeout, protocol="smtp", action=send)
    except EddymailError as error:
        # The password or token, when the error happened while it was in use, comes with it.
        return _failed(item, channel, error, secrets.carried_by(error))
    crash_point("outbox accepted")
    OutboxItem.update(status=SENT, sent_at=utcnow(), attempts=item.attempts + 1,
                      last_error=None).where(OutboxItem.id == item.id).execute()
    log.info("sent outbox #%s (%s): %s", item.id, item.kind, answer)
    return SendResult(item.id, item.kind, list(item.recipients), True, SENT, answer=answer)


def _failed(item: OutboxItem, channel: Channel | None, error: EddymailError,
            known_secrets: list[str]) -> SendResult:
    attempts = item.attempts + 1
    answer = error.answer if isinstance(error, MailServerError) else ""
    permanent = bool(_PERMANENT.match(answer)) or isinstance(error, ValidationError)
    status = FAILED if permanent or attempts >= MAX_ATTEMPTS else QUEUED
    wait = BACKOFF[min(attempts, len(BACKOFF)) - 1]
    entry = errorlog.record_failure(channel=channel, operation=f"send {item.kind}",
                                    error=error, secrets=known_secrets)
    OutboxItem.update(
        status=status, attempts=attempts, next_attempt_at=utcnow() + wait,
        last_error=entry.answer or entry.message,
    ).where(OutboxItem.id == item.id).execute()
    return SendResult(item.id, item.kind, list(item.recipients), False, status,
                      entry.answer or entry.message, entry.hint or None)


def list_outbox(*, include_sent: bool = False, limit: int = 100) -> list[OutboxEntry]:
    """What is waiting (and why), newest first; with ``include_sent`` the sent ones too."""
    query = OutboxItem.select().order_by(OutboxItem.id.desc()).limit(limit)
    if not include_sent:
        query = query.where(OutboxItem.status != SENT)
    return [_entry(item) for item in query]


def _entry(item: OutboxItem) -> OutboxEntry:
    channel = Channel.get_or_none(Channel.id == item.channel_id) if item.channel_id else None
    return OutboxEntry(
        id=item.id, kind=item.kind, template=item.template,
        channel=channel.name if channel else None, ticket_id=item.ticket_id,
        recipients=list(item.recipients), subject=_subject_of(bytes(item.raw)),
        status=item.status, attempts=item.attempts,
        next_attempt_at=item.next_attempt_at if item.status == QUEUED else None,
        last_error=item.last_error, created_at=item.created_at, sent_at=item.sent_at,
    )


def _subject_of(raw: bytes) -> str:
    header = raw.split(b"\r\n\r\n", 1)[0]
    parsed = BytesHeaderParser(policy=default_policy).parsebytes(header)
    return str(parsed.get("Subject", ""))
