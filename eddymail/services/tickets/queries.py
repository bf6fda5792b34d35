"""Tickets as staff see them: lists with filters and paging, and whole threads.

``ticket list`` is run often on big databases (issue 14): what only a filter, a search or
``ticket show`` needs (agents, departments, the search, quote folding, history,
participants) is imported where it is used, and rows are read as tuples of the columns
shown, not as model instances.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import peewee

from eddymail.db.models import (
    Agent,
    Attachment,
    Channel,
    Department,
    Message,
    Ticket,
    TicketTag,
    User,
)
from eddymail.errors import ConflictError, NotFoundError, ValidationError
from eddymail.services.tickets.results import HistoryEntry, SearchMatch

STATUS_FILTERS = ("active", "open", "pending", "closed", "all")
PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class TicketSummary:
    """One row of ``ticket list``."""

    id: int
    subject: str
    status: str
    department: str
    requester: str
    requester_name: str
    assignee: str | None  # the agent's handle
    assignee_name: str
    awaiting_reply: bool
    message_count: int
    created_at: datetime
    last_activity_at: datetime
    priority: str
    tags: list[str]
    merged_into: int | None  # set: merged into that ticket (and closed)
    match: SearchMatch | None = None  # with ``search``: why the ticket was found


@dataclass(frozen=True)
class AttachmentInfo:
    """An attachment's description (never its bytes)."""

    id: int
    filename: str
    content_type: str
    size: int
    inline: bool
    shown_name: str = ""  # the name with runs of blank/invisible characters counted
    extension: str = ""  # the real extension (after the last dot), e.g. ".exe"

    @classmethod
    def of(cls, id: int, filename: str, content_type: str, size: int,
           inline: bool) -> AttachmentInfo:
        """The description, with the shown name and the real extension worked out."""
        from eddymail.services.tickets.attachment_names import real_extension, shown_name

        return cls(id, filename, content_type, size, inline, shown_name(filename),
                   real_extension(filename))


@dataclass(frozen=True)
class ThreadMessage:
    """One message of a ticket's thread."""

    id: int
    direction: str
    from_: dict
    to: list[dict]
    cc: list[dict]
    bcc: list[dict]  # staff replies only
    reply_to: list[dict]
    subject: str
    body_text: str
    date: datetime | None
    created_at: datetime
    automatic: str | None
    author: str
    attachments: list[AttachmentInfo]
    new_text: str  # body_text without the quoted history of earlier mails
    quoted_lines: int
    reply_to_differs: bool  # Reply-To names someone else than From (replies go to From)
    auth_status: str | None  # sender verification: pass|fail|none|missing; None: not checked
    message_id_reused: bool  # an earlier, different message came with the same Message-ID


@dataclass(frozen=True)
class TicketDetail:
    """A ticket with everything ``ticket show`` prints."""

    id: int
    subject: str
    status: str
    department: str
    requester: str
    requester_name: str
    assignee: str | None  # the agent's handle
    assignee_name: str
    channel: str | None
    participants: list[str]
    # Cc addresses of customer mail that did not become participants (the sender was not
    # verified): shown so staff can add them to a reply by hand.
    cc_not_added: list[str]
    carried_tag: int | None
    awaiting_reply: bool
    created_at: datetime
    last_activity_at: datetime
    priority: str
    tags: list[str]
    merged_into: int | None  # set: merged into that ticket, which now has its messages
    merged_from: list[int]  # tickets merged into this one
    messages: list[ThreadMessage]
    history: list[HistoryEntry]


UNASSIGNED = ""  # ``assignee=UNASSIGNED``: tickets nobody has

# What a ``TicketSummary`` is made of, read as tuples (``_summary`` takes them in this order).
_SUMMARY_COLUMNS = (Ticket.id, Ticket.subject, Ticket.status, Department.name,
                    Ticket.requester_address, User.name, Agent.handle, Agent.name,
                    Ticket.awaiting_reply, Ticket.message_count, Ticket.created_at,
                    Ticket.last_activity_at, Ticket.priority, Ticket.merged_into)


def list_tickets(
    *,
    status: str = "active",
    department: str | None = None,
    requester: str | None = None,
    assignee: str | None = None,
    search: str | None = None,
    priority: str | None = None,
    tags: Sequence[str] = (),
    limit: int = 50,
    offset: int = 0,
) -> list[TicketSummary]:
    """Tickets, newest activity first; the page is read from the index, not by scanning.

    ``assignee`` is an agent's handle or name, or ``UNASSIGNED`` for tickets nobody has.
    With ``search``, only tickets whose messages match it (see ``services.tickets.search``),
    best match first, each with its ``match``. ``tags``: tickets with every one of them.
    """
    if status not in STATUS_FILTERS:
        raise ValidationError(f"--status must be one of {', '.join(STATUS_FILTERS)}.")
    if limit < 1 or offset < 0:
        raise ValidationError("--limit must be at least 1 and --offset not negative.")
    conditions = _filters(status=status, department=department, requester=requester,
                          assignee=assignee, priority=priority, tags=tags)
    newest_first = (Ticket.last_activity_at.desc(), Ticket.id.desc())
    query = (
        Ticket.select(*_SUMMARY_COLUMNS)
        .join(Department, on=(Ticket.department == Department.id))
        .switch(Ticket)
        .join(User, peewee.JOIN.LEFT_OUTER, on=(Ticket.requester == User.id))
        .switch(Ticket)
        .join(Agent, peewee.JOIN.LEFT_OUTER, on=(Ticket.assignee == Agent.id))
        .order_by(*newest_first)
    )
    if conditions:  # (peewee refuses an empty where())
        query = query.where(*conditions)
    if search is None:
        rows = _rows(query.limit(limit).offset(offset))
        labels = tags_of(row[0] for row in rows)
        return [_summary(row, labels[row[0]]) for row in rows]
    from eddymail.services.tickets import search as ticket_search

    terms = ticket_search.query_terms(search)
    plan = ticket_search.plan(terms)
    if plan.how == ticket_search.WALK:  # many matches: newest first (module docstring)
        walk = (Ticket.select(Ticket.id, Message.id)
                .join(Message, on=(Message.ticket == Ticket.id)).order_by(*newest_first))
        if conditions:
            walk = walk.where(*conditions)
        found = ticket_search.first_tickets(walk, plan.messages, offset + limit)
        if found is not None:
            page = dict(list(found.items())[offset:])  # ticket -> its newest match
            position = {ticket_id: index for index, ticket_id in enumerate(page)}
            rows = sorted(_rows(query.where(Ticket.id.in_(list(page)))) if page else [],
                          key=lambda row: position[row[0]])
            matches = ticket_search.describe_matches(
                terms, dict.fromkeys(page.values(), None))
            labels = tags_of(page)
            return [_summary(row, labels[row[0]], matches.get(page[row[0]])) for row in rows]
    if plan.how != ticket_search.RANK:  # probe, or a walk too long: a set
        how = ticket_search.SET if plan.how == ticket_search.WALK else plan.how
        rows = _rows(query.where(ticket_search.has_match(terms, Ticket.id, how))
                     .limit(limit).offset(offset))
        labels = tags_of(row[0] for row in rows)
        described = ticket_search.describe_page(terms, [row[0] for row in rows])
        return [_summary(row, labels[row[0]], described.get(row[0])) for row in rows]
    hits = ticket_search.best_matches(terms).alias("hits")
    query = (query.switch(Ticket).join(hits, on=(Ticket.id == hits.c.ticket_id))
             .select_extend(hits.c.message_id.alias("match_message_id"),
                            hits.c.score.alias("match_score"))
             .order_by(hits.c.score.desc(), *newest_first))
    rows = _rows(query.limit(limit).offset(offset))  # each ends in message id, score
    matches = ticket_search.describe_matches(terms, {row[-2]: row[-1] for row in rows})
    labels = tags_of(row[0] for row in rows)
    return [_summary(row, labels[row[0]], matches.get(row[-2])) for row in rows]


def _filters(*, status: str, department: str | None, requester: str | None,
             assignee: str | None, priority: str | None, tags: Sequence[str]
             ) -> list[peewee.Expression]:
    """The conditions on ``Ticket`` of ``list_tickets``' filters."""
    conditions = []
    if status == "active":
        conditions.append(Ticket.status != "closed")
    elif status != "all":
        conditions.append(Ticket.status == status)
    if department:
        from eddymail.services.departments import find_department

        conditions.append(Ticket.department == find_department(department))
    if requester:
        from eddymail.mail.message.addresskeys import address_key

        conditions.append(Ticket.requester_address == address_key(requester))
    if assignee == UNASSIGNED:
        conditions.append(Ticket.assignee.is_null())
    elif assignee is not None:
        from eddymail.services.agents import find_agent

        conditions.append(Ticket.assignee == find_agent(assignee).id)
    if priority is not None:
        conditions.append(Ticket.priority == priority.strip().casefold())
    for tag in tags:
        conditions.append(Ticket.id.in_(
            TicketTag.select(TicketTag.ticket).where(TicketTag.name == tag.strip().casefold())))
    return conditions


def _rows(query: peewee.ModelSelect[Ticket]) -> list[tuple[Any, ...]]:
    # peewee's stubs type .tuples() rows as models, hence the cast
    return cast(list[tuple[Any, ...]], list(query.tuples()))


def tags_of(ticket_ids: Iterable[int]) -> dict[int, list[str]]:
    """The tags of each ticket (alphabetical; an empty list for a ticket without)."""
    found: dict[int, list[str]] = {ticket_id: [] for ticket_id in ticket_ids}
    if found:
        for row in (TicketTag.select(TicketTag.ticket, TicketTag.name)
                    .where(TicketTag.ticket.in_(list(found))).order_by(TicketTag.name)):
            found[row.ticket_id].append(row.name)
    return found


def _summary(row: tuple[Any, ...], tags: list[str], match: SearchMatch | None = None
             ) -> TicketSummary:
    """A ``TicketSummary`` from a row of ``_SUMMARY_COLUMNS``."""
    (ticket_id, subject, status, department, requester, requester_name, assignee,
     assignee_name, awaiting_reply, message_count, created_at, last_activity_at, priority,
     merged_into) = row[:len(_SUMMARY_COLUMNS)]
    return TicketSummary(
        id=ticket_id,
        subject=subject,
        status=status,
        department=department,
        requester=requester,
        requester_name=requester_name or "",
        assignee=assignee,
        assignee_name=(assignee_name or "") if assignee is not None else "",
        awaiting_reply=awaiting_reply,
        message_count=message_count,
        created_at=created_at,
        last_activity_at=last_activity_at,
        priority=priority,
        tags=tags,
        merged_into=merged_into,
        match=match,
    )


def find_ticket(ticket_id: int) -> Ticket:
    """The ticket with this number. Raises ``NotFoundError``."""
    ticket = Ticket.get_or_none(Ticket.id == ticket_id)
    if ticket is None:
        raise NotFoundError(f"No ticket #{ticket_id}: see eddymail ticket list --status all.")
    return ticket


def active_ticket(ticket_id: int) -> Ticket:
    """The ticket to change: like ``find_ticket``, but a merged one is refused
    (``ConflictError`` naming the ticket that has its messages now)."""
    ticket = find_ticket(ticket_id)
    if ticket.merged_into_id is not None:
        raise ConflictError(f"Ticket #{ticket.id} was merged into #{ticket.merged_into_id}: "
                            f"work on #{ticket.merged_into_id}.")
    return ticket


def require_ticket(ticket_id: int) -> None:
    """Raise unless ticket ``ticket_id`` exists and can be changed (before asking for text)."""
    active_ticket(ticket_id)


# What ``ticket show`` shows of each message, read as tuples (a thread may have thousands:
# model instances cost more than the query).
_THREAD_COLUMNS = (Message.id, Message.direction, Message.from_address, Message.from_name,
                   Message.to, Message.cc, Message.bcc, Message.reply_to, Message.subject,
                   Message.body_text, Message.sent_at, Message.created_at, Message.automatic,
                   Message.author_name, Message.auth_status, Message.message_id_reused)


def show_ticket(ticket_id: int) -> TicketDetail:
    """A ticket with its whole thread, oldest first."""
    from eddymail.services.tickets.history import history_of
    from eddymail.services.tickets.users import participant_list

    ticket = find_ticket(ticket_id)
    # peewee's stubs type .tuples() rows as models, hence the cast
    rows = cast(list[tuple[Any, ...]], list(
        Message.select(*_THREAD_COLUMNS).where(Message.ticket == ticket)
        .order_by(Message.created_at, Message.id).tuples()))
    attachments: dict[int, list[AttachmentInfo]] = {}
    if rows:
        query = (Attachment.select(Attachment.id, Attachment.message, Attachment.filename,
                                   Attachment.content_type, Attachment.size, Attachment.inline)
                 .join(Message, on=(Attachment.message == Message.id))
                 .where(Message.ticket == ticket).order_by(Attachment.id))
        for row in query:
            attachments.setdefault(row.message_id, []).append(AttachmentInfo.of(
                row.id, row.filename, row.content_type, row.size, row.inline))
    messages = [_thread_message(row, attachments.get(row[0], [])) for row in rows]
    requester = ticket.requester if ticket.requester_id else None
    assignee = Agent.get_or_none(Agent.id == ticket.assignee_id) if ticket.assignee_id else None
    participants = participant_list(ticket)
    own = {channel.email.lower() for channel in Channel.select(Channel.email)}
    known = {ticket.requester_address.lower(), *participants, *own}
    cc_not_added = list(dict.fromkeys(
        entry["address"].lower() for m in messages if m.direction == "in"
        for entry in m.cc if entry["address"].lower() not in known))
    return TicketDetail(
        id=ticket.id,
        subject=ticket.subject,
        status=ticket.status,
        department=ticket.department.name,
        requester=ticket.requester_address,
        requester_name=requester.name if requester else "",
        assignee=assignee.handle if assignee else None,
        assignee_name=assignee.name if assignee else "",
        channel=ticket.channel.name if ticket.channel_id and ticket.channel else None,
        participants=participants,
        cc_not_added=cc_not_added,
        carried_tag=ticket.carried_tag,
        awaiting_reply=ticket.awaiting_reply,
        created_at=ticket.created_at,
        last_activity_at=ticket.last_activity_at,
        priority=ticket.priority,
        tags=tags_of([ticket.id])[ticket.id],
        merged_into=ticket.merged_into_id,
        merged_from=[row.id for row in Ticket.select(Ticket.id)
                     .where(Ticket.merged_into == ticket.id).order_by(Ticket.id)],
        messages=messages,
        history=history_of(ticket),
    )


def _thread_message(row: tuple[Any, ...], attachments: list[AttachmentInfo]) -> ThreadMessage:
    """One message of the thread from its ``_THREAD_COLUMNS``."""
    from eddymail.mail.message.quotes import split_quoted

    (message_id, direction, from_address, from_name, to, cc, bcc, reply_to, subject,
     body_text, sent_at, created_at, automatic, author_name, auth_status, reused) = row
    split = split_quoted(body_text) if direction == "in" else None
    sender = from_address.lower()
    reply_to = reply_to or []
    replies_to = [entry["address"].lower() for entry in reply_to]
    return ThreadMessage(
        id=message_id,
        direction=direction,
        from_={"address": from_address, "name": from_name},
        to=to or [],
        cc=cc or [],
        bcc=bcc or [],
        reply_to=reply_to,
        subject=subject,
        body_text=body_text,
        date=sent_at,
        created_at=created_at,
        automatic=automatic,
        author=author_name,
        attachments=attachments,
        new_text=split.text if split else body_text,
        quoted_lines=split.quoted_lines if split else 0,
        reply_to_differs=bool(replies_to) and replies_to != [sender],
        auth_status=auth_status,
        message_id_reused=reused,
    )
