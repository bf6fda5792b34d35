"""Agents: the staff who work tickets, and who is acting in this command.

An agent has a short ``handle`` (typed in ``--as``, ``EDDYMAIL_AGENT``, ``ticket assign``),
a display name, an address for staff notifications, a signature, the departments whose mail
they work, and how they want to hear of it (at once, or in a digest). Who acts is checked
against this list: once a team has agents, every reply, note and status change in the
ticket history names one of them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import peewee

from eddymail.db.connection import database_proxy
from eddymail.db.models import (
    Agent,
    AgentDepartment,
    Department,
    Ticket,
    TicketEvent,
    utcnow,
)
from eddymail.errors import ConflictError, NotFoundError, UsageError, ValidationError
from eddymail.patterns import LazyPattern
from eddymail.services import naming
from eddymail.services.actors import Actor, describe_actor
from eddymail.services.departments import find_department

HANDLE = LazyPattern(r"^\w[\w.-]{0,63}$")
DELIVERIES = ("immediate", "digest")
MAX_NAME = 100
MAX_SIGNATURE = 2000
MIN_DIGEST_MINUTES, MAX_DIGEST_MINUTES = 5, 7 * 24 * 60


@dataclass(frozen=True)
class AgentInfo:
    """An agent as ``agent list|show`` and ``--json`` show it."""

    id: int
    handle: str
    name: str
    email: str
    signature: str
    departments: list[str]
    notify_new_tickets: bool
    notify_replies: bool
    notify_assigned: bool
    delivery: str
    digest_minutes: int
    open_tickets: int
    created_at: datetime


@dataclass(frozen=True)
class AgentChanges:
    """What ``agent add|edit`` was given; ``None`` means "not given, keep it"."""

    name: str | None = None
    email: str | None = None  # "" clears
    signature: str | None = None  # "" clears
    departments: Sequence[str] | None = None  # replaces the list
    add_departments: Sequence[str] = ()
    remove_departments: Sequence[str] = ()
    notify_new_tickets: bool | None = None
    notify_replies: bool | None = None
    notify_assigned: bool | None = None
    delivery: str | None = None
    digest_minutes: int | None = None


def find_agent(identity: str) -> Agent:
    """The agent with this handle, or else this name (both case-insensitive)."""
    wanted = " ".join(identity.split()).casefold()
    agents = list(Agent.select())
    for agent in agents:
        if agent.handle.casefold() == wanted:
            return agent
    named = [agent for agent in agents if agent.name.casefold() == wanted]
    if len(named) == 1:
        return named[0]
    known = ", ".join(sorted(agent.handle for agent in agents)) or "none yet"
    raise NotFoundError(
        f"No agent '{naming.printable(identity)}' (agents: {known}): see eddymail agent list."
    )


def acting_agent(identity: str | None, *, source: str = "--as") -> Actor:
    """The actor of this command from the identity given (``--as``, env or config).

    A team without agents acts under the configured name as typed (or none: replies are then
    signed by the department). A team with agents must name one of them; with exactly one
    agent, that one is assumed.
    """
    agents = list(Agent.select().limit(2))
    if not agents:
        return Actor(name=" ".join((identity or "").split()))
    if not identity:
        if len(agents) == 1:
            return describe_actor(agents[0])
        raise UsageError(
            "Say which agent you are: --as HANDLE, EDDYMAIL_AGENT=HANDLE, or name = \"HANDLE\" "
            "under [agent] in eddymail.toml.", hint="eddymail agent list shows the handles.")
    try:
        return describe_actor(find_agent(identity))
    except NotFoundError as error:
        raise UsageError(f"{error.message} (the identity came from {source})") from None


def add_agent(handle: str, changes: AgentChanges) -> AgentInfo:
    """Create an agent. Without departments, the only department there is (if just one)."""
    handle = _handle(handle)
    with database_proxy.atomic():
        if _handle_taken(handle):
            raise ConflictError(f"An agent with the handle '{handle}' already exists.")
        agent = Agent(handle=handle, name=handle)
        _apply(agent, changes)
        agent.save()
        departments = changes.departments
        if departments is None and not changes.add_departments:
            only = list(Department.select().limit(2))
            departments = [only[0].name] if len(only) == 1 else []
        _set_departments(agent, departments, changes.add_departments, ())
    return describe(agent)


def edit_agent(identity: str, changes: AgentChanges, *, new_handle: str | None = None
               ) -> AgentInfo:
    """Change an agent's details (only what is given)."""
    with database_proxy.atomic():
        agent = find_agent(identity)
        if new_handle is not None:
            handle = _handle(new_handle)
            if handle.casefold() != agent.handle.casefold() and _handle_taken(handle):
                raise ConflictError(f"An agent with the handle '{handle}' already exists.")
            agent.handle = handle
        _apply(agent, changes)
        agent.updated_at = utcnow()
        agent.save()
        _set_departments(agent, changes.departments, changes.add_departments,
                         changes.remove_departments)
    return describe(agent)


def remove_agent(identity: str, *, actor: Actor) -> tuple[str, list[int]]:
    """Delete an agent; their tickets become unassigned (in each ticket's history).

    Returns the handle and the unassigned ticket numbers. What the agent did stays in the
    histories under their handle.
    """
    with database_proxy.atomic():
        agent = find_agent(identity)
        tickets = [ticket.id for ticket in
                   Ticket.select(Ticket.id).where(Ticket.assignee == agent)]
        now = utcnow()
        # "unassign" as in services.tickets.history (which imports this module).
        TicketEvent.insert_many([
            {"ticket": ticket_id, "agent": actor.agent_id, "actor": actor.handle or actor.name,
             "action": "unassign", "detail": {"from": agent.handle, "reason": "agent removed"},
             "created_at": now} for ticket_id in tickets]).execute() if tickets else None
        agent.delete_instance()
    return agent.handle, tickets


def list_agents(department: str | None = None) -> list[AgentInfo]:
    """Every agent (of one department) by handle."""
    query = Agent.select().order_by(Agent.handle)
    if department:
        query = query.join(AgentDepartment).where(
            AgentDepartment.department == find_department(department))
    return [describe(agent) for agent in query]


def show_agent(identity: str) -> AgentInfo:
    """One agent."""
    return describe(find_agent(identity))


def describe(agent: Agent) -> AgentInfo:
    """The plain view of an agent row."""
    departments = [department.name for department in Department.select(Department.name)
                   .join(AgentDepartment).where(AgentDepartment.agent == agent)
                   .order_by(Department.name)]
    open_tickets = (Ticket.select(peewee.fn.COUNT(Ticket.id))
                    .where((Ticket.assignee == agent) & (Ticket.status != "closed")).scalar())
    return AgentInfo(
        id=agent.id, handle=agent.handle, name=agent.name, email=agent.email,
        signature=agent.signature, departments=departments,
        notify_new_tickets=agent.notify_new_tickets, notify_replies=agent.notify_replies,
        notify_assigned=agent.notify_assigned,
        delivery=agent.delivery, digest_minutes=agent.digest_minutes,
        open_tickets=int(open_tickets or 0), created_at=agent.created_at,
    )


# --- helpers ------------------------------------------------------------------------------


def _handle(text: str) -> str:
    handle = unicodedata.normalize("NFKC", text.strip())
    if not HANDLE.match(handle):
        raise ValidationError(
            f"The handle '{naming.printable(text)}' is not allowed: use 1-64 letters, digits, "
            "dots, dashes or underscores, no spaces (e.g. anna or anna.petrova)."
        )
    return handle


def _handle_taken(handle: str) -> bool:
    return any(row.handle.casefold() == handle.casefold() for row in Agent.select(Agent.handle))


def _apply(agent: Agent, changes: AgentChanges) -> None:
    if changes.name is not None:
        name = " ".join(changes.name.split())
        if not name or len(name) > MAX_NAME or not name.isprintable():
            raise ValidationError(f"An agent's name is one line of 1-{MAX_NAME} characters.")
        agent.name = name
    if changes.email is not None:
        # Imported here: every ingest loads this module (a ticket's history names its
        # actor), only editing an agent checks an address.
        from eddymail.mail.message.compose import validate_address

        agent.email = validate_address(changes.email.strip()) if changes.email.strip() else ""
    if changes.signature is not None:
        agent.signature = _signature(changes.signature)
    if changes.notify_new_tickets is not None:
        agent.notify_new_tickets = changes.notify_new_tickets
    if changes.notify_replies is not None:
        agent.notify_replies = changes.notify_replies
    if changes.notify_assigned is not None:
        agent.notify_assigned = changes.notify_assigned
    if changes.delivery is not None:
        if changes.delivery not in DELIVERIES:
            raise ValidationError(f"--delivery must be one of {', '.join(DELIVERIES)}.")
        agent.delivery = changes.delivery
    if changes.digest_minutes is not None:
        if not MIN_DIGEST_MINUTES <= changes.digest_minutes <= MAX_DIGEST_MINUTES:
            raise ValidationError(
                f"A digest interval is {MIN_DIGEST_MINUTES} minutes to 7 days.")
        agent.digest_minutes = changes.digest_minutes


def _signature(text: str) -> str:
    lines = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cleaned = "\n".join(line.rstrip() for line in lines).strip("\n")
    if len(cleaned) > MAX_SIGNATURE:
        raise ValidationError(f"A signature may have at most {MAX_SIGNATURE} characters.")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in cleaned):
        raise ValidationError("A signature may not contain control characters.")
    return cleaned


def _set_departments(agent: Agent, replace: Sequence[str] | None, add: Sequence[str],
                     remove: Sequence[str]) -> None:
    if replace is not None:
        AgentDepartment.delete().where(AgentDepartment.agent == agent).execute()
        add = [*replace, *add]
    for name in add:
        AgentDepartment.insert(agent=agent, department=find_department(name)
                               ).on_conflict_ignore().execute()
    for name in remove:
        AgentDepartment.delete().where((AgentDepartment.agent == agent) & (
            AgentDepartment.department == find_department(name))).execute()


def parse_minutes(text: str) -> int:
    """``90``, ``45m``, ``2h`` or ``1d`` as minutes."""
    match = re.fullmatch(r"\s*(\d+)\s*([mhd]?)\s*", text.lower())
    if match is None:
        raise ValidationError(f"'{text}' is not a duration: use minutes (90), or 45m, 2h, 1d.")
    return int(match.group(1)) * {"": 1, "m": 1, "h": 60, "d": 1440}[match.group(2)]
