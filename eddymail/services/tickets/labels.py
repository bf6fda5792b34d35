"""Priorities and tags: what staff mark a ticket with to sort and find it.

A priority is one of ``low``, ``normal`` (every ticket's to begin with), ``high`` and
``urgent``. Tags are short lower-case words (``billing``, ``vip``, ``spam``); a ticket has any
number of them. Both are staff's own marks: changing them is recorded in the ticket's
history but leaves no message in the thread, and no customer ever sees them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from eddymail.db.connection import database_proxy
from eddymail.db.models import Ticket, TicketTag, utcnow
from eddymail.errors import ValidationError
from eddymail.services import naming
from eddymail.services.actors import Actor
from eddymail.services.tickets import history
from eddymail.services.tickets.queries import PRIORITIES, active_ticket, tags_of

TAG = re.compile(r"^[^\W_][\w.+-]{0,39}$")
PRIORITY, TAGS = "priority", "tag"  # history actions


@dataclass(frozen=True)
class LabelChange:
    """A ticket's priority and tags after a change (``changed``: whether anything did)."""

    ticket_id: int
    priority: str
    tags: list[str]
    changed: bool


def tag_name(text: str) -> str:
    """A tag as stored: trimmed, lower-case. Raises ``ValidationError`` for anything else."""
    name = text.strip().casefold()
    if not TAG.match(name):
        raise ValidationError(f"'{naming.printable(text)}' cannot be a tag: one word of up to "
                              "40 letters, digits, '.', '+', '-' or '_'.")
    return name


def priority_name(text: str) -> str:
    """A priority as stored. Raises ``ValidationError`` for an unknown one."""
    name = text.strip().casefold()
    if name not in PRIORITIES:
        raise ValidationError(f"Unknown priority '{naming.printable(text)}': "
                              f"one of {', '.join(PRIORITIES)}.")
    return name


def set_priority(ticket_id: int, priority: str, *, actor: Actor) -> LabelChange:
    """Give a ticket a priority."""
    priority = priority_name(priority)
    with database_proxy.atomic():
        ticket = active_ticket(ticket_id)
        changed = ticket.priority != priority
        if changed:
            history.record(ticket, actor, PRIORITY,
                           detail={"from": ticket.priority, "to": priority})
            Ticket.update(priority=priority).where(Ticket.id == ticket.id).execute()
    return LabelChange(ticket.id, priority, tags_of([ticket.id])[ticket.id], changed)


def change_tags(ticket_id: int, *, add: Sequence[str] = (), remove: Sequence[str] = (),
                actor: Actor) -> LabelChange:
    """Add and remove tags of a ticket (adding one it has, or removing one it lacks, is fine)."""
    wanted = list(dict.fromkeys(tag_name(name) for name in add))
    unwanted = list(dict.fromkeys(tag_name(name) for name in remove))
    if not wanted and not unwanted:
        raise ValidationError("Say which tags to --add or --remove.")
    with database_proxy.atomic():
        ticket = active_ticket(ticket_id)
        before = set(tags_of([ticket.id])[ticket.id])
        added = [name for name in wanted if name not in before and name not in unwanted]
        removed = [name for name in unwanted if name in before]
        for name in added:
            TicketTag.create(ticket=ticket, name=name, created_at=utcnow())
        if removed:
            TicketTag.delete().where((TicketTag.ticket == ticket)
                                     & TicketTag.name.in_(removed)).execute()
        if added or removed:
            history.record(ticket, actor, TAGS, detail={"added": added, "removed": removed})
    return LabelChange(ticket.id, ticket.priority, tags_of([ticket.id])[ticket.id],
                       bool(added or removed))
