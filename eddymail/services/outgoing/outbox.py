"""The outbox: every outgoing mail is a row first, and is sent after the commit.

A row is written in the same transaction as the ticket message it belongs to, so a crash
can never leave a reply that was recorded but not queued (or sent but not recorded). Sending
happens later (``send_due``), marks the row sent only once the server accepted the mail,
and keeps a failed row queued with its error and a back-off.

Sending is restartable. A row is claimed (``sending``) before anything is said to the
server, and ``data_started_at`` is written just before SMTP DATA. A process that dies
leaves a ``sending`` row behind, and the next run decides by that column:

- not set: the server never received the text; the row is queued again once the claim is
  ``STALE_CLAIM`` old (no live sender takes that long: its deadline ends it first);
- set: the mail may have been delivered (the server may have taken it just before the
  crash); the row is sent again only after ``UNSURE_DELAY``, with the very same bytes and
  so the same Message-ID, which lets mail clients and servers collapse a duplicate, and
  the error log says so. A mail is never lost; at worst it arrives twice, recognisably.

Rows that will never be sent (``failed``, ``cancelled``) stay until ``purge`` removes them.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import peewee

from eddymail import secrets
from eddymail.crashpoints import crash_point
from eddymail.db.connection import database_proxy
from eddymail.db.models import Channel, Message, OutboxItem, Ticket, utcnow
from eddymail.errors import EddymailError, MailServerError, NotFoundError, ValidationError
from eddymail.mail.message.addresskeys import address_key
from eddymail.patterns import LazyPattern
from eddymail.services import errorlog
from eddymail.services.channels.endpoints import provider_hints_of, smtp_endpoint

# The composer and the header reader (the email package's header registry under both) are
# imported where mail is queued or listed: every fetch sends what is due, and most runs
# find nothing to send.
if TYPE_CHECKING:
    from eddymail.mail.message.compose import OutgoingMail

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
    from eddymail.mail.message.compose import build_message, envelope_recipients, make_message_id

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

QUEUED, SENDING, SENT, FAILED, CANCELLED = "queued", "sending", "sent", "failed", "cancelled"
MAX_ATTEMPTS = 20
# Waits after the 1st, 2nd, ... failed attempt; the last one repeats.
BACKOFF = (timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=15),
           timedelta(hours=1), timedelta(hours=3), timedelta(hours=6))
# A row claimed by a process that died before DATA is handed back after this long.
STALE_CLAIM = timedelta(minutes=5)
# A row whose DATA had begun when its process died is sent again only after this long.
UNSURE_DELAY = timedelta(hours=1)
_PERMANENT = LazyPattern(r"^\s*5\d\d\b")


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
    by the rule of the module docstring (``release_abandoned``): mail may then go out
    twice, with one Message-ID, but is never lost. ``deadline`` (a
    ``time.monotonic()`` value) ends the round; a channel whose server failed is not tried
    again in the same round, so one dead server costs one timeout, not one per row.
    """
    release_abandoned()
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
        OutboxItem.update(status=SENDING, next_attempt_at=now, data_started_at=None).where(
            OutboxItem.id == row[0]).execute()
    return int(row[0])


def send_one(item_id: int, *, timeout: float = 30.0,
             deadline: float | None = None) -> SendResult | None:
    """Claim and send one row; None when another process claimed it first."""
    claimed = OutboxItem.update(status=SENDING, next_attempt_at=utcnow(),
                                data_started_at=None).where(
        (OutboxItem.id == item_id) & OutboxItem.status.in_([QUEUED, FAILED])
    ).execute()
    if not claimed:
        return None
    return _send_claimed(item_id, timeout=timeout, deadline=deadline)


def _send_claimed(item_id: int, *, timeout: float, deadline: float | None) -> SendResult:
    """Send a row this process claimed; mark it sent, or failed with its back-off."""
    # Imported here: queueing a notification (every new ticket) needs no SMTP client and no
    # sign-in.
    from eddymail.mail.wire.smtp import SmtpClient
    from eddymail.services.channels.signin import Credential, with_sign_in

    crash_point("outbox claimed")
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
                return client.send(item.mail_from, list(item.recipients), bytes(item.raw),
                                   before_data=lambda: _data_starts(item.id))

        answer = with_sign_in(channel, timeout=timeout, protocol="smtp", action=send)
    except EddymailError as error:
        # The password or token, when the error happened while it was in use, comes with it.
        return _failed(item, channel, error, secrets.carried_by(error))
    crash_point("outbox accepted")
    OutboxItem.update(status=SENT, sent_at=utcnow(), attempts=item.attempts + 1,
                      last_error=None).where(OutboxItem.id == item.id).execute()
    log.info("sent outbox #%s (%s): %s", item.id, item.kind, answer)
    return SendResult(item.id, item.kind, list(item.recipients), True, SENT, answer=answer)


def _data_starts(item_id: int) -> None:
    """Record, committed, that DATA begins: from now on the mail may have been delivered."""
    OutboxItem.update(data_started_at=utcnow()).where(OutboxItem.id == item_id).execute()
    crash_point("outbox data started")


def release_abandoned(now: datetime | None = None) -> int:
    """Queue again the rows a dead process left ``sending`` (see the module docstring).

    Returns how many. A row whose DATA had begun is logged: it may arrive twice.
    """
    now = now or utcnow()
    released = OutboxItem.update(status=QUEUED).where(
        (OutboxItem.status == SENDING) & OutboxItem.data_started_at.is_null()
        & (OutboxItem.next_attempt_at < now - STALE_CLAIM)
    ).execute()
    unsure = list(OutboxItem.select().where(
        (OutboxItem.status == SENDING) & (OutboxItem.data_started_at < now - UNSURE_DELAY)))
    for item in unsure:
        note = ("interrupted during SMTP DATA; it may have been delivered: sent again with "
                f"the same Message-ID <{item.message_id}>")
        updated = OutboxItem.update(
            status=QUEUED, data_started_at=None, attempts=item.attempts + 1, last_error=note,
            next_attempt_at=now,
        ).where((OutboxItem.id == item.id) & (OutboxItem.status == SENDING)).execute()
        if updated:
            channel = Channel.get_or_none(Channel.id == item.channel_id) \
                if item.channel_id else None
            errorlog.record_failure(channel=channel, operation=f"send {item.kind}",
                                    error=EddymailError(f"Outbox #{item.id}: {note}."))
            released += 1
    return released


def cancel(item_id: int) -> OutboxEntry:
    """Never send row ``item_id`` (queued or failed); ``ValidationError`` for other states."""
    item = OutboxItem.get_or_none(OutboxItem.id == item_id)
    if item is None:
        raise NotFoundError(f"No outbox mail #{item_id}: see eddymail outbox list.")
    changed = OutboxItem.update(status=CANCELLED, next_attempt_at=utcnow()).where(
        (OutboxItem.id == item_id) & OutboxItem.status.in_([QUEUED, FAILED])).execute()
    if not changed:
        raise ValidationError(f"Outbox mail #{item_id} is {item.status}: only queued or failed "
                              "mail can be cancelled.")
    return _entry(OutboxItem.get_by_id(item_id))


def purge(*, failed: bool) -> int:
    """Delete the rows that will never be sent (failed and cancelled); how many."""
    if not failed:
        raise ValidationError("Say what to purge: --failed (failed and cancelled mail).")
    return OutboxItem.delete().where(OutboxItem.status.in_([FAILED, CANCELLED])).execute()


def _failed(item: OutboxItem, channel: Channel | None, error: EddymailError,
            known_secrets: list[str]) -> SendResult:
    attempts = item.attempts + 1
    answer = error.answer if isinstance(error, MailServerError) else ""
    permanent = bool(_PERMANENT.match(answer)) or isinstance(error, ValidationError)
    status = FAILED if permanent or attempts >= MAX_ATTEMPTS else QUEUED
    wait = BACKOFF[min(attempts, len(BACKOFF)) - 1]
    if _maybe_delivered(item.id, answer):
        # Cut off during DATA with no answer: the server may have the mail. Try again
        # late, with the same bytes (the same Message-ID), as after a crash.
        wait = max(wait, UNSURE_DELAY)
    entry = errorlog.record_failure(channel=channel, operation=f"send {item.kind}",
                                    error=error, secrets=known_secrets)
    OutboxItem.update(
        status=status, attempts=attempts, next_attempt_at=utcnow() + wait,
        last_error=entry.answer or entry.message,
    ).where(OutboxItem.id == item.id).execute()
    return SendResult(item.id, item.kind, list(item.recipients), False, status,
                      entry.answer or entry.message, entry.hint or None)


def _maybe_delivered(item_id: int, answer: str) -> bool:
    """Whether DATA had begun on this attempt and the server never answered it."""
    started = OutboxItem.select(OutboxItem.data_started_at).where(
        OutboxItem.id == item_id).scalar()
    return started is not None and not re.match(r"^\s*\d{3}\b", answer)


def list_outbox(*, include_sent: bool = False, limit: int = 100) -> list[OutboxEntry]:
    """What is waiting (and why), newest first; with ``include_sent`` the sent ones too."""
    query = OutboxItem.select().order_by(OutboxItem.id.desc()).limit(limit)
    if not include_sent:
        query = query.where(OutboxItem.status != SENT)
    return [_entry(item) for item in query]


def _entry(item: OutboxItem) -> OutboxEntry:
    from eddymail.mail.message.headerpeek import subject_of  # (the email package's parser)

    channel = Channel.get_or_none(Channel.id == item.channel_id) if item.channel_id else None
    return OutboxEntry(
        id=item.id, kind=item.kind, template=item.template,
        channel=channel.name if channel else None, ticket_id=item.ticket_id,
        recipients=list(item.recipients), subject=subject_of(bytes(item.raw)),
        status=item.status, attempts=item.attempts,
        next_attempt_at=item.next_attempt_at if item.status == QUEUED else None,
        last_error=item.last_error, created_at=item.created_at, sent_at=item.sent_at,
    )
