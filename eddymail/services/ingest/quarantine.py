"""The quarantine as people work with it: who sent what, when, why it is held; its bytes.

A quarantined message could not be parsed (or was over the size limit), so nothing but its
raw bytes is stored. What ``mail quarantine list`` shows of it is read again, leniently,
from the header block alone: enough to recognise the mail, never enough to trip over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import peewee

from eddymail.db.models import Channel, LedgerEntry, RawMessage
from eddymail.errors import NotFoundError
from eddymail.mail.message.headerpeek import peek_headers
from eddymail.services.ingest.records import QUARANTINED

#: How much of a quarantined message is read to find its headers.
HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class QuarantinedMessage:
    """A quarantined message as ``mail quarantine list`` shows it."""

    id: int
    channel: str | None
    sender: str
    subject: str
    date: datetime | None
    reason: str
    size: int
    headers_only: bool
    quarantined_at: datetime


def list_quarantine(*, channel_name: str | None = None,
                    limit: int = 100) -> list[QuarantinedMessage]:
    """Quarantined messages, newest first, with sender, subject, date and the reason."""
    outer = peewee.JOIN.LEFT_OUTER
    query = (
        LedgerEntry.select(LedgerEntry, Channel.id, Channel.name)
        .join(Channel, join_type=outer, on=(LedgerEntry.channel == Channel.id))
        .where(LedgerEntry.status == QUARANTINED)
        .order_by(LedgerEntry.id.desc())
        .limit(limit)
    )
    if channel_name:
        query = query.where(Channel.name == channel_name)
    return [_describe(entry) for entry in query]


def quarantined_bytes(entry_id: int) -> bytes:
    """The raw bytes of quarantined message ``entry_id``, exactly as they arrived."""
    entry = LedgerEntry.get_or_none((LedgerEntry.id == entry_id)
                                    & (LedgerEntry.status == QUARANTINED))
    if entry is None or entry.raw_id is None:
        raise NotFoundError(f"No quarantined message #{entry_id}: see eddymail mail "
                            "quarantine list.")
    return bytes(RawMessage.get_by_id(entry.raw_id).data)


def _describe(entry: LedgerEntry) -> QuarantinedMessage:
    raw = (RawMessage.select(peewee.fn.SUBSTR(RawMessage.data, 1, HEADER_BYTES).alias("head"),
                             RawMessage.headers_only)
           .where(RawMessage.id == entry.raw_id).first()) if entry.raw_id else None
    headers = peek_headers(bytes(raw.head) if raw else b"")
    channel = entry.channel if entry.channel_id else None
    return QuarantinedMessage(
        id=entry.id, channel=channel.name if channel else None,
        sender=headers.sender, subject=headers.subject, date=headers.date,
        reason=entry.error or "",
        size=entry.size, headers_only=bool(raw and raw.headers_only),
        quarantined_at=entry.created_at,
    )
