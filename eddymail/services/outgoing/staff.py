"""Staff notifications: agents hear of new tickets, customers' answers and assignments.

- a new ticket notifies the agents of its department;
- a customer's answer notifies the ticket's assignee, or the department's agents when nobody
  has it;
- an assignment notifies the new assignee (unless they took it themselves).

Each agent chooses which of these they want and whether at once or in a digest (then a
``StaffNotice`` waits for ``services.outgoing.digests``). The mail is plain text from the
``staff_*`` templates: it may quote the subject and an excerpt of the customer's text, because
it goes to the team's own people, but never the customer's HTML or attachments (those are
only named). It is automatic mail (``Auto-Submitted: auto-generated``), queued in the outbox in
the caller's transaction, and it never fails what caused it: a template that cannot render or
an address that cannot take mail is skipped with an error-log entry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import peewee

from eddymail.db.connection import database_proxy
from eddymail.db.models import (
    Agent,
    AgentDepartment,
    Attachment,
    Department,
    ErrorLogEntry,
    Message,
    StaffNotice,
    Ticket,
    User,
)
from eddymail.errors import EddymailError
from eddymail.mail.message.addresskeys import address_key
from eddymail.safetext import for_terminal
from eddymail.services import settings
from eddymail.services.outgoing import notifications

# The outbox (with the message composer) and the quote splitter are imported where a staff
# notification is really queued: most runs have no agents, or nothing to tell them.
if TYPE_CHECKING:
    from eddymail.services.actors import Actor

log = logging.getLogger("eddymail.staff")

NEW_TICKET, CUSTOMER_REPLY, ASSIGNED = "new_ticket", "customer_reply", "assigned"
TEMPLATES = {NEW_TICKET: "staff_new_ticket", CUSTOMER_REPLY: "staff_customer_reply",
             ASSIGNED: "staff_assigned"}
WANTS = {NEW_TICKET: "notify_new_tickets", CUSTOMER_REPLY: "notify_replies",
         ASSIGNED: "notify_assigned"}
KIND = "staff"  # the outbox kind: not counted in the caps on mail to customers
EXCERPT_LINES, EXCERPT_CHARS = 15, 1200
# The sender checks ``ticket show`` warns about, worded for the agent's mail in the team's
# language (``message.warning``).
WARNINGS = {
    "en": {"fail": "Sender verification FAILED: the From address may be forged.",
           "missing": "Sender NOT VERIFIED: the mail provider added no "
                      "Authentication-Results."},
    "ru": {"fail": "Проверка отправителя НЕ ПРОЙДЕНА: адрес в From может быть подделан.",
           "missing": "Отправитель НЕ ПРОВЕРЕН: почтовый сервер не добавил "
                      "Authentication-Results."},
}


@dataclass
class StaffRun:
    """What one run (a fetch, an ingest) looks up once: agents per department, problems
    already logged (one entry per problem per run, not one per message)."""

    own: set[str] = field(default_factory=notifications.own_addresses)
    _any: bool | None = field(default=None, repr=False)
    _agents: dict[int, list[Agent]] = field(default_factory=dict, repr=False)
    _by_address: dict[str, Agent] | None = field(default=None, repr=False)
    _logged: set[str] = field(default_factory=set, repr=False)

    @property
    def any_agents(self) -> bool:
        """Whether the team has agents at all (most of a run's work is skipped without)."""
        if self._any is None:
            self._any = Agent.select().exists()
        return self._any

    def department_agents(self, department_id: int) -> list[Agent]:
        """The agents who work this department."""
        if department_id not in self._agents:
            self._agents[department_id] = list(
                Agent.select().join(AgentDepartment)
                .where(AgentDepartment.department == department_id).order_by(Agent.handle))
        return self._agents[department_id]

    def agent_by_address(self, key: str) -> Agent | None:
        """The agent whose address has this key (``address_key``), if any."""
        if not self.any_agents:
            return None
        if self._by_address is None:
            self._by_address = {address_key(agent.email): agent
                                for agent in Agent.select() if agent.email}
        return self._by_address.get(key)

    def problem(self, key: str, message: str, hint: str = "") -> None:
        """Log a reason a staff notification was skipped, once per run."""
        if key in self._logged:
            return
        self._logged.add(key)
        # The error log is where it is read; cron's stderr stays quiet (-v shows it).
        log.info("%s", message)
        ErrorLogEntry.create(operation="staff notification", message=message, hint=hint)


def notify_new_ticket(ticket: Ticket, message: Message, department: Department,
                      run: StaffRun) -> int:
    """Tell the department's agents about a new ticket; returns how many were told."""
    if not run.any_agents:
        return 0
    return _notify(NEW_TICKET, ticket, message, department,
                   run.department_agents(department.id), run)


def notify_customer_reply(ticket: Ticket, message: Message, run: StaffRun) -> int:
    """Tell the assignee (or, with none, the department's agents) that the customer wrote."""
    if not run.any_agents:
        return 0
    department = Department.get_by_id(ticket.department_id)  # where it is now, not the mailbox's
    if ticket.assignee_id:
        agents = list(Agent.select().where(Agent.id == ticket.assignee_id))
    else:
        agents = run.department_agents(department.id)
    return _notify(CUSTOMER_REPLY, ticket, message, department, agents, run)


def notify_assigned(ticket: Ticket, agent: Agent, actor: Actor) -> list[int]:
    """Tell an agent that ``actor`` gave them a ticket; the outbox rows to send at once."""
    department = Department.get_by_id(ticket.department_id)
    last_in = (Message.select().where((Message.ticket == ticket) & (Message.direction == "in"))
               .order_by(Message.created_at.desc(), Message.id.desc()).first())
    queued: list[int] = []
    _notify(ASSIGNED, ticket, last_in, department, [agent], StaffRun(),
            assigned_by=actor.label, queued=queued)
    return queued


def _notify(kind: str, ticket: Ticket, message: Message | None, department: Department,
            agents: Iterable[Agent], run: StaffRun, *, assigned_by: str = "",
            queued: list[int] | None = None) -> int:
    """Notify each agent who wants it; returns how many were; outbox ids go to ``queued``."""
    told = 0
    for agent in agents:
        if not agent.email or not getattr(agent, WANTS[kind]):
            continue
        if address_key(agent.email) in run.own:
            run.problem(f"own:{agent.id}", f"Agent {agent.handle}'s address {agent.email} is "
                        "one of our own channels; staff notifications to it would come back "
                        "as mail.", hint=f"eddymail agent edit {agent.handle} --email ADDRESS")
            continue
        if agent.delivery == "digest":
            StaffNotice.create(agent=agent, ticket=ticket, message=message, kind=kind)
            told += 1
            continue
        try:
            # A savepoint: whatever goes wrong here leaves the ticket change intact.
            with database_proxy.atomic():
                item_id = _queue(kind, ticket, message, department, agent, assigned_by)
            told += 1
            if item_id is not None and queued is not None:
                queued.append(item_id)
        except peewee.OperationalError:
            raise  # the database itself (locked, full): not this notification's fault
        except (EddymailError, peewee.DatabaseError, ValueError) as error:
            text = error.message if isinstance(error, EddymailError) else str(error)
            run.problem(f"{kind}:{agent.id}:{text}",
                        f"Staff notification {TEMPLATES[kind]} to {agent.handle} about ticket "
                        f"#{ticket.id} not sent: {text}",
                        hint=getattr(error, "hint", None) or "")
    return told


def _queue(kind: str, ticket: Ticket, message: Message | None, department: Department,
           agent: Agent, assigned_by: str) -> int | None:
    sender = notifications.sender_channel(department)
    if sender is None:
        raise EddymailError(
            "no channel can send notifications",
            hint="eddymail settings set system-channel NAME, or give the department an "
            "outgoing channel")
    rendered = notifications.render_for_department(
        TEMPLATES[kind], department,
        staff_context(ticket, message, agent, assigned_by=assigned_by))
    if rendered is None:
        return None  # staff switched this notification off
    mail = notifications.automatic_mail(
        sender, department, rendered, to=agent.email, auto_submitted="auto-generated",
        extra_headers={"X-Eddymail-Ticket": str(ticket.id)})
    from eddymail.services.outgoing.outbox import queue_mail

    return queue_mail(kind=KIND, channel=sender, mail=mail, ticket=ticket, message=message,
                      template=TEMPLATES[kind]).id


def staff_context(ticket: Ticket, message: Message | None, agent: Agent | None, *,
                  assigned_by: str = "", language: str | None = None) -> dict:
    """The values a staff template may use, from a ticket and its (latest) customer message.

    What the customer wrote (subject, name, address) comes with control, bidi and invisible
    characters spelt out, as ``ticket show`` shows them.
    """
    customer = User.get_or_none(User.id == ticket.requester_id) if ticket.requester_id else None
    assignee = Agent.get_or_none(Agent.id == ticket.assignee_id) if ticket.assignee_id else None
    return {
        "agent": {"name": (agent.name or agent.handle) if agent else "",
                  "handle": agent.handle if agent else ""},
        "ticket": {"id": ticket.id, "subject": _shown(ticket.subject), "status": ticket.status},
        "customer": {"name": _shown(customer.name) if customer else "",
                     "email": _shown(ticket.requester_address)},
        "message": describe_message(
            message, language or settings.get_value(settings.LANGUAGE)),
        "assignee": {"name": (assignee.name or assignee.handle) if assignee else ""},
        "assigned_by": {"name": assigned_by},
    }


def describe_message(message: Message | None, language: str = "en") -> dict:
    """A customer message for staff: sender, a plain excerpt, attachment names, a warning
    (in ``language``)."""
    if message is None:
        return {"from": "", "from_name": "", "excerpt": "", "attachments": "", "warning": ""}
    files = [f"{row.filename} ({_size(row.size)})" for row in Attachment.select(
        Attachment.filename, Attachment.size).where(
        (Attachment.message == message) & ~Attachment.inline)]
    return {
        "from": _shown(message.from_address),
        # The name this sender gave, not the requester's: a colleague in Cc may answer.
        "from_name": _shown(message.from_name or ""),
        "excerpt": excerpt(message.body_text),
        "attachments": _shown(", ".join(files)),
        "warning": WARNINGS.get(language, WARNINGS["en"]).get(message.auth_status or "", ""),
    }


def excerpt(text: str) -> str:
    """The new text of a customer's mail (quoted history left out), shortened, made plain.

    Control, bidi and invisible characters are spelled out (``\\u202e``), so the excerpt
    reads in the agent's mail client as it would in ``ticket show``.
    """
    from eddymail.mail.message.quotes import split_quoted

    new_text = split_quoted(text).text.strip()
    lines = [line.rstrip() for line in new_text.splitlines()]
    cut = len(lines) > EXCERPT_LINES
    shown = "\n".join(lines[:EXCERPT_LINES])
    if len(shown) > EXCERPT_CHARS:
        shown, cut = shown[:EXCERPT_CHARS].rstrip(), True
    return for_terminal(shown) + ("\n[…]" if cut else "")


def _shown(text: str) -> str:
    return for_terminal(text, multiline=False)


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / 1024 / 1024:.1f} MB"
