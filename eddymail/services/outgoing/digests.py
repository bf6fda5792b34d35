"""Digests: one mail per interval for agents who chose not to hear of every ticket at once.

A staff notification for an agent with ``delivery = digest`` waits as a ``StaffNotice``.
``fetch`` and ``outbox retry`` call ``send_due_digests``: an agent's digest is due once the
oldest waiting notice is ``digest_minutes`` old, so a busy queue costs each agent at most one
mail per interval. Notices of an agent who went back to immediate delivery go out at the next
run; an agent without an address has nothing to receive, and their notices are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

import peewee

from eddymail.db.connection import database_proxy
from eddymail.db.models import Agent, Department, Message, StaffNotice, Ticket, utcnow
from eddymail.errors import EddymailError
from eddymail.mail.message.addresskeys import address_key
from eddymail.safetext import for_terminal
from eddymail.services import settings
from eddymail.services.outgoing import notifications
from eddymail.services.outgoing.outbox import queue_mail
from eddymail.services.outgoing.staff import ASSIGNED, KIND, NEW_TICKET, StaffRun, excerpt

TEMPLATE = "staff_digest"
MAX_ENTRIES = 50  # a longer digest is cut; the counts still say how many there were
LABELS = {
    "en": {"new_ticket": "new ticket", "customer_reply": "customer reply",
           "assigned": "assigned to you", "more": "… and {} more"},
    "ru": {"new_ticket": "новое обращение", "customer_reply": "ответ клиента",
           "assigned": "назначено вам", "more": "… и ещё {}"},
}


@dataclass(frozen=True)
class DigestSent:
    """A digest queued for an agent (or why not)."""

    agent: str
    notices: int
    outbox_id: int | None
    error: str | None = None


def send_due_digests(now: datetime | None = None) -> list[DigestSent]:
    """Queue every digest that is due; each agent's in its own transaction."""
    now = now or utcnow()
    run = StaffRun()
    waiting = (StaffNotice.select(StaffNotice.agent, peewee.fn.MIN(StaffNotice.created_at))
               .where(StaffNotice.digested_at.is_null()).group_by(StaffNotice.agent).tuples())
    results = []
    # peewee's stubs type .tuples() rows as models, hence the cast
    for agent_id, first in list(cast(Iterable[tuple[int, datetime | str]], waiting)):
        agent = Agent.get_by_id(agent_id)
        oldest = _as_datetime(first)
        due = agent.delivery != "digest" or now - oldest >= timedelta(minutes=agent.digest_minutes)
        if due:
            results.append(_send(agent, now, run))
    return results


def _send(agent: Agent, now: datetime, run: StaffRun) -> DigestSent:
    with database_proxy.atomic():
        notices = list(StaffNotice.select().where(
            (StaffNotice.agent == agent) & StaffNotice.digested_at.is_null())
            .order_by(StaffNotice.created_at, StaffNotice.id))
        ids = [notice.id for notice in notices]
        if not agent.email:
            _done(ids, agent, now)
            return DigestSent(agent.handle, len(ids), None, "the agent has no address")
        try:
            with database_proxy.atomic():  # a failure keeps the notices for the next run
                item_id = _queue(agent, notices, run)
        except peewee.OperationalError:
            raise
        except (EddymailError, peewee.DatabaseError, ValueError) as error:
            text = error.message if isinstance(error, EddymailError) else str(error)
            run.problem(f"digest:{agent.id}", f"Digest for {agent.handle} not sent: {text}",
                        hint=getattr(error, "hint", None) or "")
            return DigestSent(agent.handle, len(ids), None, text)
        _done(ids, agent, now)
    return DigestSent(agent.handle, len(ids), item_id)


def _done(ids: list[int], agent: Agent, now: datetime) -> None:
    StaffNotice.update(digested_at=now).where(StaffNotice.id.in_(ids)).execute()
    Agent.update(last_digest_at=now).where(Agent.id == agent.id).execute()


def _queue(agent: Agent, notices: Sequence[StaffNotice], run: StaffRun) -> int:
    first = Ticket.get_by_id(notices[0].ticket_id)
    department = Department.get_by_id(first.department_id)
    sender = notifications.sender_channel(department)
    if sender is None:
        raise EddymailError("no channel can send notifications",
                            hint="eddymail settings set system-channel NAME")
    if address_key(agent.email) in run.own:
        raise EddymailError(f"the address {agent.email} is one of our own channels")
    counts = {kind: sum(1 for n in notices if n.kind == kind)
              for kind in (NEW_TICKET, "customer_reply", ASSIGNED)}
    rendered = notifications.render_for_department(TEMPLATE, department, {
        "agent": {"name": agent.name or agent.handle, "handle": agent.handle},
        "digest": {"count": len(notices), "new_tickets": counts[NEW_TICKET],
                   "replies": counts["customer_reply"], "assigned": counts[ASSIGNED],
                   "text": digest_text(notices)},
    })
    if rendered is None:
        raise EddymailError("the staff_digest template is switched off",
                            hint="eddymail template enable staff_digest")
    mail = notifications.automatic_mail(sender, department, rendered, to=agent.email,
                                        auto_submitted="auto-generated", extra_headers={})
    return queue_mail(kind=KIND, channel=sender, mail=mail, template=TEMPLATE).id


def digest_text(notices: Sequence[StaffNotice]) -> str:
    """One entry per notice: number, kind and subject, then sender, department, first line."""
    labels = LABELS.get(settings.get_value(settings.LANGUAGE), LABELS["en"])
    tickets = {t.id: t for t in Ticket.select().where(
        Ticket.id.in_([n.ticket_id for n in notices]))}
    departments = {d.id: d.name for d in Department.select()}
    messages = {m.id: m for m in Message.select(Message.id, Message.from_address,
                                                Message.body_text)
                .where(Message.id.in_([n.message_id for n in notices if n.message_id]))}
    lines = []
    for notice in notices[:MAX_ENTRIES]:
        ticket = tickets[notice.ticket_id]
        message = messages.get(notice.message_id) if notice.message_id else None
        first_line = excerpt(message.body_text).split("\n", 1)[0][:100] if message else ""
        sender = message.from_address if message else ticket.requester_address
        lines.append(f"#{ticket.id}  {labels[notice.kind]}  {_one_line(ticket.subject)}")
        lines.append(f"      {_one_line(sender)} ({departments.get(ticket.department_id, '')})"
                     + (f": {first_line}" if first_line else ""))
    if len(notices) > MAX_ENTRIES:
        lines.append(labels["more"].format(len(notices) - MAX_ENTRIES))
    return "\n".join(lines)


def _as_datetime(value: datetime | str) -> datetime:
    # An aggregate is not converted by the column's field: SQLite hands back the text.
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _one_line(text: str) -> str:
    """A customer's words on one line, invisible and control characters spelt out."""
    return for_terminal(" ".join(text.split())[:120], multiline=False) or "-"
