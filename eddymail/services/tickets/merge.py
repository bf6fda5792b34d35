"""Merging tickets: one customer request that arrived as several tickets becomes one.

``merge(A, [B])`` moves everything of B into A in one transaction: its messages (so their
Message-IDs thread replies into A), its participants (B's requester too, when it is someone
else), its tags, its history and its outbox rows (so a bounce of a reply sent from B lands
in A). B stays as an empty, closed ticket that says where it went (``merged_into``), so mail
that still carries B's subject tag threads into A (``services.ingest.threads``) and
``ticket show B`` points at A. The search index needs nothing: its entries are messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eddymail.db.connection import database_proxy
from eddymail.db.models import (
    Message,
    OutboxItem,
    StaffNotice,
    Ticket,
    TicketEvent,
    TicketParticipant,
    TicketTag,
    User,
    utcnow,
)
from eddymail.errors import ValidationError
from eddymail.services.actors import Actor
from eddymail.services.tickets import history, users
from eddymail.services.tickets.labels import PRIORITIES
from eddymail.services.tickets.queries import active_ticket

MERGE, MERGED = "merge", "merged"  # history actions: on the target, and on the source
_LIVELINESS = {"open": 2, "pending": 1, "closed": 0}  # the merged ticket's status: the liveliest


@dataclass(frozen=True)
class MergeResult:
    """What ``ticket merge`` did."""

    ticket_id: int
    merged: list[int]
    messages_moved: int
    status: str


def merge(target_id: int, source_ids: Sequence[int], *, actor: Actor) -> MergeResult:
    """Merge the tickets ``source_ids`` into ``target_id`` (see the module docstring)."""
    sources = list(dict.fromkeys(source_ids))
    if not sources:
        raise ValidationError("Name the ticket(s) to merge into the first one.")
    if target_id in sources:
        raise ValidationError(f"Ticket #{target_id} cannot be merged into itself.")
    moved = 0
    with database_proxy.atomic():
        target = active_ticket(target_id)
        for source in [active_ticket(source_id) for source_id in sources]:
            moved += _merge_one(target, source, actor)
    return MergeResult(target.id, sources, moved, target.status)


def _merge_one(target: Ticket, source: Ticket, actor: Actor) -> int:
    moved = Message.update(ticket=target).where(Message.ticket == source).execute()
    for model in (TicketEvent, StaffNotice, OutboxItem):
        model.update(ticket=target).where(model.ticket == source).execute()
    people = list(User.select().join(TicketParticipant)
                  .where(TicketParticipant.ticket == source))
    if source.requester_id is not None and source.requester_id != target.requester_id:
        people.append(User.get_by_id(source.requester_id))
    users.add_participants(target, people)
    have = {row.name for row in TicketTag.select(TicketTag.name)
            .where(TicketTag.ticket == target)}
    for row in TicketTag.select().where(TicketTag.ticket == source):
        if row.name not in have:
            TicketTag.create(ticket=target, name=row.name, created_at=row.created_at)
    TicketTag.delete().where(TicketTag.ticket == source).execute()

    now = utcnow()
    newer = source if source.last_activity_at > target.last_activity_at else target
    target.awaiting_reply = newer.awaiting_reply
    target.last_activity_at = max(source.last_activity_at, target.last_activity_at, now)
    target.status = max(target.status, source.status, key=lambda s: _LIVELINESS.get(s, 0))
    target.priority = max(target.priority, source.priority, key=PRIORITIES.index)
    target.message_count += moved + 1
    target.save()
    note = Message.create(ticket=target, direction="system", author_name="eddymail",
                          body_text=f"{actor.label} merged ticket #{source.id} "
                                    f"({source.subject}) into this ticket.", created_at=now)
    history.record(target, actor, MERGE, message=note,
                   detail={"from": source.id, "messages": moved})

    # B keeps its last activity: merging is not news about B, and it sinks down the list.
    Ticket.update(merged_into=target, status="closed", awaiting_reply=False,
                  message_count=1).where(Ticket.id == source.id).execute()
    pointer = Message.create(ticket=source, direction="system", author_name="eddymail",
                             body_text=f"{actor.label} merged this ticket into #{target.id}.",
                             created_at=now)
    history.record(source, actor, MERGED, message=pointer, detail={"into": target.id})
    return moved
