"""Which ticket an incoming message belongs to.

Strongest signal first: our own Message-IDs in In-Reply-To/References (replies and
notifications we sent), then Message-IDs stored on a ticket's inbound mail, then the subject
tag (``[#123]``); a ticket merged into another stands for that one. Every signal is only
honoured when the sender already takes part in that ticket: a tag or a forged In-Reply-To
from a stranger must not let him read or reopen someone else's ticket, so his mail opens a
ticket of its own that records the tag it carried.
"""

from __future__ import annotations

from dataclasses import dataclass

from eddymail.db.models import Message, OutboxItem, Ticket
from eddymail.mail.message.addresskeys import address_key
from eddymail.mail.message.parse import ParsedMessage
from eddymail.mail.message.subjects import find_ticket_tags
from eddymail.services.tickets.users import participant_addresses

OUR_DIRECTIONS = ("out", "system")


@dataclass(frozen=True)
class ThreadMatch:
    """The outcome: a ticket to join, or the tag a stranger's mail carried (for the record)."""

    ticket: Ticket | None
    signal: str | None = None  # our_message_id | message_id | subject_tag
    refused_tag: int | None = None


def find_thread(parsed: ParsedMessage, tag_format: str, *, trusted: bool = True) -> ThreadMatch:
    """The ticket ``parsed`` continues, if any (see the module docstring for the rules).

    ``trusted=False`` (the sender failed verification) never joins an existing ticket, and
    neither does a From that names no single valid address: with several, the first may be a
    participant's and the next the writer's own.
    """
    trusted = trusted and parsed.sender_valid
    sender = address_key(parsed.from_.address) if parsed.from_ else ""
    candidates = _ticket_candidates(parsed, tag_format)
    refused: int | None = None
    for ticket, signal in candidates:
        if trusted and sender and sender in participant_addresses(ticket):
            return ThreadMatch(ticket, signal)
        if refused is None:
            refused = ticket.id
    return ThreadMatch(None, refused_tag=refused)


def _ticket_candidates(parsed: ParsedMessage, tag_format: str) -> list[tuple[Ticket, str]]:
    ids = list(dict.fromkeys([*parsed.in_reply_to, *reversed(parsed.references)]))
    found: list[tuple[Ticket, str]] = []
    seen: set[int] = set()

    def add(ticket_id: int | None, signal: str) -> None:
        ticket = current_ticket(ticket_id)
        if ticket is not None and ticket.id not in seen:
            seen.add(ticket.id)
            found.append((ticket, signal))

    if ids:
        for row in Message.select(Message.ticket).where(
            Message.message_id.in_(ids) & Message.direction.in_(OUR_DIRECTIONS)
            & Message.ticket.is_null(False)
        ):
            add(row.ticket_id, "our_message_id")
        for item in OutboxItem.select(OutboxItem.ticket).where(
            OutboxItem.message_id.in_(ids) & OutboxItem.ticket.is_null(False)
        ):
            add(item.ticket_id, "our_message_id")
        for row in Message.select(Message.ticket).where(
            Message.message_id.in_(ids) & (Message.direction == "in")
            & Message.ticket.is_null(False)
        ):
            add(row.ticket_id, "message_id")
    for ticket_id in find_ticket_tags(parsed.subject, tag_format):
        add(ticket_id, "subject_tag")
    return found


MAX_MERGE_HOPS = 20


def current_ticket(ticket_id: int | None) -> Ticket | None:
    """The ticket, or the one it was merged into (and so on: A into B, B into C)."""
    ticket = Ticket.get_or_none(Ticket.id == ticket_id) if ticket_id is not None else None
    for _ in range(MAX_MERGE_HOPS):
        if ticket is None or ticket.merged_into_id is None:
            return ticket
        ticket = Ticket.get_or_none(Ticket.id == ticket.merged_into_id)
    return ticket
