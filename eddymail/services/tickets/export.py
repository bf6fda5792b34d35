"""``ticket export``: tickets out of eddymail as JSON, CSV or an mbox mailbox.

Everything exported came, at least in part, from strangers' mail, so each format is made
safe for the program that will read it:

- CSV: a cell that a spreadsheet would run as a formula (it starts with ``=``, ``+``, ``-``,
  ``@``, a tab or a carriage return) gets a leading ``'``, so ``=HYPERLINK(...)`` in a
  subject stays text (CSV injection); quoting is the csv module's.
- mbox (mboxrd): every body line that reads ``From ...`` or ``>From ...`` gets one more
  ``>``, so no message can forge the start of the next one, and the separator line is built
  from an address that cannot carry spaces or line breaks. The mail is exported as received
  (the stored raw bytes) and as sent (the outbox copy); internal notes never leave.
- JSON: the caller's JSON writer (one document, control characters escaped).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from eddymail.db.models import Message, OutboxItem, RawMessage
from eddymail.mail.message.compose import stand_in_message
from eddymail.services.tickets.queries import TicketDetail, list_tickets, show_ticket

FORMATS = ("json", "csv", "mbox")
PAGE = 500

CSV_COLUMNS = ("id", "subject", "status", "priority", "tags", "department", "requester",
               "requester_name", "assignee", "participants", "message_count", "created_at",
               "last_activity_at", "merged_into")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FROM_LINE = re.compile(rb"^(>*From )", re.MULTILINE)
_SAFE_ENVELOPE = re.compile(r"^[^\s<>\"]{1,254}@[^\s<>\"]{1,254}$")


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote."""

    format: str
    tickets: int
    messages: int  # mbox: the messages written; json and csv: those of the tickets exported


def select_ids(ids: Sequence[int] = (), *, status: str = "all", department: str | None = None,
               search: str | None = None, tags: Sequence[str] = ()) -> list[int]:
    """The tickets to export: the numbers given, else every ticket the filters find."""
    if ids:
        return list(dict.fromkeys(ids))
    found: list[int] = []
    while True:
        page = list_tickets(status=status, department=department, search=search, tags=tags,
                            limit=PAGE, offset=len(found))
        found += [ticket.id for ticket in page]
        if len(page) < PAGE:
            return found


def details(ids: Sequence[int]) -> Iterator[TicketDetail]:
    """Each ticket in full, one at a time (an export of thousands is never all in memory)."""
    for ticket_id in ids:
        yield show_ticket(ticket_id)


def write_csv(ids: Sequence[int], stream: BinaryIO) -> ExportSummary:
    """One CSV row per ticket (UTF-8, a header row first)."""
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text)
    writer.writerow(CSV_COLUMNS)
    count = messages = 0
    for detail in details(ids):
        writer.writerow([detail.id, *(neutral(value) for value in (
            detail.subject, detail.status, detail.priority, " ".join(detail.tags),
            detail.department, detail.requester, detail.requester_name, detail.assignee or "",
            " ".join(detail.participants))), len(detail.messages),
            _iso(detail.created_at), _iso(detail.last_activity_at), detail.merged_into or ""])
        count += 1
        messages += len(detail.messages)
    text.detach()  # the caller's stream stays open
    return ExportSummary("csv", count, messages)


def neutral(value: str) -> str:
    """A text cell a spreadsheet shows as text, never runs as a formula."""
    if value.startswith(_FORMULA_START) or value.lstrip().startswith(_FORMULA_START[:4]):
        return "'" + value
    return value


def write_mbox(ids: Sequence[int], stream: BinaryIO) -> ExportSummary:
    """The mail of the tickets, oldest first per ticket, as one mboxrd mailbox."""
    count = written = 0
    for ticket_id in ids:
        count += 1
        for message in (Message.select().where(Message.ticket == ticket_id,
                                               Message.direction.in_(("in", "out")))
                        .order_by(Message.created_at, Message.id)):
            stream.write(mbox_entry(message, _mail_bytes(message), ticket_id))
            written += 1
    return ExportSummary("mbox", count, written)


def mbox_entry(message: Message, raw: bytes, ticket_id: int) -> bytes:
    """One message of an mboxrd file: the separator line, the quoted mail, a blank line."""
    sender = message.from_address if _SAFE_ENVELOPE.match(message.from_address or "") \
        else "MAILER-DAEMON"
    stamp = message.created_at.strftime("%a %b %d %H:%M:%S %Y")
    body = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    body = _FROM_LINE.sub(rb">\1", body)
    if not body.endswith(b"\n"):
        body += b"\n"
    head = f"From {sender} {stamp}\nX-Eddymail-Ticket: {ticket_id}\n".encode("ascii")
    return head + body + b"\n"


def _mail_bytes(message: Message) -> bytes:
    """The mail as received or as sent; rebuilt from the thread when no copy is kept."""
    if message.direction == "in" and message.raw_id is not None:
        stored = RawMessage.get_or_none(RawMessage.id == message.raw_id)
        if stored is not None:
            return bytes(stored.data)
    if message.direction == "out":
        sent = (OutboxItem.select(OutboxItem.raw).where(OutboxItem.ticket_message == message.id)
                .order_by(OutboxItem.id).first())
        if sent is not None:
            return bytes(sent.raw)
    return stand_in_message(sender=message.from_address, subject=message.subject,
                            message_id=message.message_id,
                            date=message.sent_at or message.created_at,
                            body=message.body_text or "")


def _iso(moment: datetime) -> str:
    return moment.replace(microsecond=0).isoformat() + "Z"
