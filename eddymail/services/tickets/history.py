"""A ticket's history: which agent did what, and when.

Every staff action (reply, note, close, reopen, move, assign, unassign) is one
``TicketEvent`` row, written in the same transaction as the change itself. The row keeps the
agent's handle as it was, so the history still reads right after the agent is removed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from eddymail.db.models import Agent, Message, Ticket, TicketEvent, utcnow
from eddymail.services.actors import Actor
from eddymail.services.tickets.results import HistoryEntry

REPLY, NOTE, CLOSE, REOPEN, MOVE, ASSIGN, UNASSIGN = (
    "reply", "note", "close", "reopen", "move", "assign", "unassign")
CUSTOMER = "customer"  # the actor of what a customer's mail did (reopen by answering)


def record(ticket: Ticket | int, actor: Actor | str, action: str, *,
           message: Message | None = None, detail: dict[str, Any] | None = None) -> None:
    """Write one history entry (inside the caller's transaction)."""
    from eddymail.db import fastsql  # (here: ``ticket show`` reads the history, writes none)

    if isinstance(actor, Actor):
        agent_id, label = actor.agent_id, actor.handle or actor.name
    else:
        agent_id, label = None, actor
    fastsql.create(TicketEvent, ticket=ticket, agent=agent_id, actor=label, action=action,
                   detail=detail or {}, message=message, created_at=utcnow())


def history_of(ticket: Ticket) -> list[HistoryEntry]:
    """A ticket's history, oldest first."""
    # peewee's stubs type .tuples() rows as models, hence the cast
    rows = cast(Iterable[tuple[int, str, str]],
                Agent.select(Agent.id, Agent.handle, Agent.name).tuples())
    names = {agent_id: (handle, name) for agent_id, handle, name in rows}
    entries = []
    for event in (TicketEvent.select().where(TicketEvent.ticket == ticket)
                  .order_by(TicketEvent.created_at, TicketEvent.id)):
        if event.agent_id in names:
            handle, name = names[event.agent_id]
            shown = f"{name} ({handle})" if name and name != handle else handle
        else:  # the customer, a team without agents, or an agent removed since
            handle, shown = None, event.actor or "staff"
        entries.append(HistoryEntry(event.created_at, event.action, handle, shown,
                                    dict(event.detail or {}), event.message_id))
    return entries
