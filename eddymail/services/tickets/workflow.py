"""What staff do to a ticket besides replying: note, close, reopen, move, assign.

Every change of status, department or assignee leaves a system message in the thread and an
entry in the ticket's history naming the acting agent, in the same transaction as the change.
Replies live in ``services.tickets.replies``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eddymail.db.connection import database_proxy
from eddymail.db.models import Agent, Department, Message, Ticket, utcnow
from eddymail.errors import ValidationError
from eddymail.services.actors import Actor
from eddymail.services.agents import find_agent
from eddymail.services.departments import find_department
from eddymail.services.outgoing import staff
from eddymail.services.tickets import history, search
from eddymail.services.tickets.queries import active_ticket

STATUSES = ("open", "pending", "closed")


@dataclass(frozen=True)
class TicketChange:
    """The outcome of close/reopen/move/assign/note."""

    ticket_id: int
    status: str
    department: str
    assignee: str | None  # the agent's handle
    message_id: int | None = None
    notifications: list[int] = field(default_factory=list)  # outbox rows to send now


def note(ticket_id: int, text: str, *, actor: Actor) -> TicketChange:
    """An internal note: part of the thread, never mailed to anyone."""
    if not text.strip():
        raise ValidationError("The note is empty.")
    with database_proxy.atomic():
        ticket = active_ticket(ticket_id)
        message = Message.create(ticket=ticket, direction="note", author_name=actor.label,
                                 body_text=text.strip() + "\n")
        search.index_message(message)
        history.record(ticket, actor, history.NOTE, message=message)
        ticket.message_count += 1
        ticket.last_activity_at = utcnow()
        ticket.save()
    return _change(ticket, message)


def set_status(ticket_id: int, status: str, *, actor: Actor) -> TicketChange:
    """Close or reopen a ticket (or mark it pending)."""
    if status not in STATUSES:
        raise ValidationError(f"Unknown status '{status}'.")
    with database_proxy.atomic():
        ticket = active_ticket(ticket_id)
        if ticket.status == status:
            return _change(ticket)
        message = _system(ticket, f"{actor.label} changed the status from {ticket.status} "
                                  f"to {status}.")
        action = {"closed": history.CLOSE, "open": history.REOPEN}.get(status, "status")
        history.record(ticket, actor, action, message=message,
                       detail={"from": ticket.status, "to": status})
        ticket.status = status
        ticket.save()
    return _change(ticket, message)


def move(ticket_id: int, department_name: str, *, actor: Actor) -> TicketChange:
    """Move a ticket to another department; its next reply goes out from that one's mailbox."""
    with database_proxy.atomic():
        ticket = active_ticket(ticket_id)
        target = find_department(department_name)
        source = Department.get_by_id(ticket.department_id)
        if target.id == source.id:
            return _change(ticket)
        message = _system(ticket, f"{actor.label} moved the ticket from {source.name} to "
                                  f"{target.name}.")
        history.record(ticket, actor, history.MOVE, message=message,
                       detail={"from": source.name, "to": target.name})
        ticket.department = target
        ticket.save()
    return _change(ticket, message)


def assign(ticket_id: int, identity: str | None, *, actor: Actor) -> TicketChange:
    """Give a ticket to an agent (``None`` takes it back to the team).

    The new assignee hears of it (the ``staff_assigned`` notification), unless they assigned
    it to themselves or switched that notification off.
    """
    with database_proxy.atomic():
        ticket = active_ticket(ticket_id)
        agent = find_agent(identity) if identity else None
        previous = Agent.get_or_none(Agent.id == ticket.assignee_id) if ticket.assignee_id else None
        if (agent.id if agent else None) == (previous.id if previous else None):
            return _change(ticket)
        if agent is not None:
            text = f"{actor.label} assigned the ticket to {_label(agent)}."
        else:
            text = f"{actor.label} unassigned the ticket."
        message = _system(ticket, text)
        history.record(ticket, actor, history.ASSIGN if agent else history.UNASSIGN,
                       message=message, detail={"from": previous.handle if previous else None,
                                                "to": agent.handle if agent else None})
        ticket.assignee = agent
        ticket.save()
        queued = (staff.notify_assigned(ticket, agent, actor)
                  if agent is not None and agent.id != actor.agent_id else [])
    return _change(ticket, message, queued)


# --- helpers --------------------------------------------------------------------------------


def _label(agent: Agent) -> str:
    return f"{agent.name} ({agent.handle})" if agent.name and agent.name != agent.handle \
        else agent.handle


def _system(ticket: Ticket, text: str) -> Message:
    ticket.last_activity_at = utcnow()
    ticket.message_count += 1
    return Message.create(ticket=ticket, direction="system", author_name="eddymail",
                          body_text=text)


def _change(ticket: Ticket, message: Message | None = None,
            notifications: list[int] | None = None) -> TicketChange:
    department = Department.get_by_id(ticket.department_id)
    assignee = Agent.get_or_none(Agent.id == ticket.assignee_id) if ticket.assignee_id else None
    return TicketChange(ticket.id, ticket.status, department.name,
                        assignee.handle if assignee else None, message.id if message else None,
                        list(notifications or []))
