"""Looking at raw mail: ``mail inspect``, the quarantine, and ``ingest`` from files.

Files may be single messages (``.eml``), mbox files or Maildir folders; each message in
them goes through the same pipeline as fetched mail, with the same deduplication.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import peewee

from eddymail.db.connection import database_proxy
from eddymail.db.models import Channel, ChannelCursor, Department, LedgerEntry, RawMessage
from eddymail.errors import NotFoundError, UsageError, ValidationError
from eddymail.mail.message.parse import ParsedMessage, parse_message
from eddymail.services.channels.lookup import find_channel
from eddymail.services.departments import find_department
from eddymail.services.ingest import pipeline as ingestion
from eddymail.services.ingest.records import (
    PENDING,
    QUARANTINED,
    SKIPPED,
    IngestOptions,
    IngestResult,
    Source,
)


def inspect_file(path: Path) -> ParsedMessage:
    """What eddymail makes of one message file (no database involved)."""
    return parse_message(read_file(path))


def reply_text(body_text: str) -> str:
    """The new text of a reply without the quoted history: what ``ticket show`` shows folded."""
    # Imported here: ``ingest`` loads this module and never folds a reply (its patterns
    # would be compiled for every message a mail server hands over).
    from eddymail.mail.message.quotes import split_quoted

    return split_quoted(body_text).text


def read_file(path: Path) -> bytes:
    """The bytes of a message file, with a clear error when it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"No such file: {path}.") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory; give one message file.") from None
    except OSError as error:
        raise UsageError(f"Cannot read {path}: {error.strerror}.") from None


@dataclass(frozen=True)
class FileOutcome:
    """One message taken from a file, and what became of it."""

    file: str
    status: str
    ticket_id: int | None
    subject: str
    error: str | None


def messages_in(path: Path) -> Iterator[tuple[str, bytes]]:
    """(label, raw bytes) for each message in a file, an mbox file or a Maildir folder."""
    import mailbox  # (here: a mail server's delivery through stdin never reads a mailbox)

    if path.is_dir():
        if not all((path / sub).is_dir() for sub in ("cur", "new")):
            raise UsageError(f"{path} is a directory but not a Maildir (no cur/ and new/).")
        folder = mailbox.Maildir(str(path), factory=None, create=False)
        for key in sorted(folder.keys()):
            yield f"{path}/{key}", folder.get_bytes(key)
        return
    raw = read_file(path)
    if raw.startswith(b"From ") and b"\n" in raw:
        box = mailbox.mbox(str(path), factory=None, create=False)
        for index, key in enumerate(box.keys(), start=1):
            yield f"{path}#{index}", box.get_bytes(key)
        return
    yield str(path), raw


@dataclass(frozen=True)
class Destination:
    """Where ``ingest`` files mail: a channel (or none) and the department of new tickets."""

    channel_id: int | None
    department_id: int


def destination(channel_name: str | None, department_name: str | None) -> Destination:
    """The channel and department for ``ingest``: the channel's, a named one, or the only one.
    Raises ``NotFoundError``."""
    channel, department = ingestion.destination(channel_name, department_name, find_channel,
                                                find_department)
    return Destination(channel.id if channel else None, department.id)


def ingest_bytes(label: str, raw: bytes, *, destination: Destination,
                 options: IngestOptions) -> FileOutcome:
    """Run one message from a file or stdin through the pipeline."""
    channel_id = destination.channel_id
    result = ingestion.ingest_raw(
        raw, channel=None if channel_id is None else Channel.get_by_id(channel_id),
        department=Department.get_by_id(destination.department_id), source=Source("file"),
        options=options)
    return _outcome(label, result)


def _outcome(label: str, result: IngestResult) -> FileOutcome:
    return FileOutcome(label, result.status, result.ticket_id, result.subject, result.error)


@dataclass(frozen=True)
class LedgerView:
    """A message as ``mail list`` shows it."""

    id: int
    channel: str | None
    status: str
    error: str | None
    size: int
    source: str
    folder: str | None
    uid: int | None
    uidl: str | None
    message_id: str | None
    headers_only: bool
    created_at: datetime


def list_messages(*, quarantined: bool, channel_name: str | None = None,
                  limit: int = 100) -> list[LedgerView]:
    """Recent ledger entries, or only the quarantined ones."""
    outer = peewee.JOIN.LEFT_OUTER
    # The joined ids are selected too: without them peewee's joined instances hide the keys.
    query = (
        LedgerEntry.select(LedgerEntry, Channel.id, Channel.name, RawMessage.id,
                           RawMessage.headers_only)
        .join(Channel, join_type=outer, on=(LedgerEntry.channel == Channel.id))
        .switch(LedgerEntry)
        .join(RawMessage, join_type=outer, on=(LedgerEntry.raw == RawMessage.id))
        .where(LedgerEntry.status.not_in([PENDING, SKIPPED]))
        .order_by(LedgerEntry.id.desc())
        .limit(limit)
    )
    if quarantined:
        query = query.where(LedgerEntry.status == QUARANTINED)
    if channel_name:
        query = query.where(Channel.name == channel_name)
    return [_view(entry) for entry in query]


def _view(entry: LedgerEntry) -> LedgerView:
    channel = entry.channel if entry.channel_id else None
    raw = entry.raw if entry.raw_id else None
    return LedgerView(
        id=entry.id, channel=channel.name if channel else None, status=entry.status,
        error=entry.error, size=entry.size, source=entry.source, folder=entry.folder,
        uid=entry.uid, uidl=entry.uidl, message_id=entry.message_id,
        headers_only=bool(raw and raw.headers_only), created_at=entry.created_at,
    )


def retry_quarantined(entry_id: int, options: IngestOptions) -> IngestResult:
    """Parse a quarantined message again (e.g. after an upgrade) and file it if it works now."""
    entry = LedgerEntry.get_or_none(LedgerEntry.id == entry_id)
    if entry is None:
        raise NotFoundError(f"No message #{entry_id} in the ledger: see eddymail mail list.")
    if entry.status != QUARANTINED:
        raise ValidationError(f"Message #{entry_id} is not quarantined (it is {entry.status}).")
    raw = RawMessage.get_by_id(entry.raw_id)
    if raw.headers_only:
        raise ValidationError(
            f"Only the headers of message #{entry_id} were kept (it was over the size limit). "
            "Raise [fetch] max_message_bytes; it is still on the server and can be taken by "
            "deleting this entry with eddymail mail forget."
        )
    channel = Channel.get_or_none(Channel.id == entry.channel_id) if entry.channel_id else None
    department = (Department.get_by_id(channel.department_id) if channel
                  else Department.select().order_by(Department.id).first())
    if department is None:
        raise NotFoundError("There is no department to file the message in.")
    result = ingestion.reprocess(bytes(raw.data), entry=entry, channel=channel,
                                 department=department, options=options)
    return result


def forget(entry_id: int) -> None:
    """Drop a quarantined ledger entry so the next fetch takes the message again."""
    with database_proxy.atomic():
        entry = LedgerEntry.get_or_none(LedgerEntry.id == entry_id)
        if entry is None or entry.status != QUARANTINED:
            raise NotFoundError(f"No quarantined message #{entry_id}.")
        entry.delete_instance()
        if entry.channel_id is not None and entry.folder is not None:
            # The folder's next fetch searches it whole again, or it would not see the
            # message: the cursor's quiet mark says everything below it is in the ledger.
            ChannelCursor.update(quiet_uidnext=None).where(
                (ChannelCursor.channel == entry.channel_id)
                & (ChannelCursor.folder == entry.folder)).execute()
