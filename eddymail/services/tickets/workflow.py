"""What staff do to a ticket: reply, note, close, reopen, move, assign.

A reply goes out from the outgoing channel of the department the ticket is in *now*, so
moving a ticket changes the sender of its next reply. The reply is stored as a thread message
and queued in the outbox in one transaction; sending happens after the commit. Every change
of status, department or assignee leaves a system message in the thread, so the history
says who did what.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eddymail import templates
from eddymail.db.connection import database_proxy
from eddymail.db.models import Attachment, Channel, Department, Message, Ticket, utcnow
from eddymail.errors import ValidationError
from eddymail.mail.message.compose import OutgoingAttachment, OutgoingMail, validate_address
from eddymail.mail.message.subjects import reply_subject
from eddymail.services import settings
from eddymail.services.departments import find_department
from eddymail.services.outgoing import notifications
from eddymail.services.outgoing.outbox import queue_mail
from eddymail.services.tickets.queries import find_ticket

MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024  # what common providers accept in one message


@dataclass(frozen=True)
class ReplyQueued:
    """A reply stored in the thread and waiting in the outbox."""

    ticket_id: int
    message_id: int
    outbox_id: int
    from_address: str
    to: list[str]
    cc: list[str]
    subject: str
    status: str


@dataclass(frozen=True)
class TicketChange:
    """The outcome of close/reopen/move/assign/note."""

    ticket_id: int
    status: str
    department: str
    assignee: str | None
    message_id: int | None = None


def reply(ticket_id: int, text: str, *, agent: str, cc: Sequence[str] = (),
          attachments: Sequence[Path] = (), close: bool = False) -> ReplyQueued:
    """Store a staff reply and queue it from the ticket's current department's mailbox."""
    if not text.strip():
        raise ValidationError("The reply is empty; nothing was sent.")
    files = [_attachment(path) for path in attachments]
    if sum(len(f.data) for f in files) > MAX_ATTACHMENT_BYTES:
        raise ValidationError("The attachments are over 25 MB together; most mail servers "
                              "refuse such a message.")
    cc = [validate_address(address) for address in cc]
    with database_proxy.atomic():
        ticket = find_ticket(ticket_id)
        department = Department.get_by_id(ticket.department_id)
        channel = _outgoing_channel(department)
        recipient = _recipient(ticket)
        last_in = (Message.select().where((Message.ticket == ticket) & (Message.direction == "in"))
                   .order_by(Message.created_at.desc(), Message.id.desc()).first())
        references = [*(last_in.references or []), last_in.message_id] if last_in else []
        framed = _framed(text, ticket, department, agent)
        body = framed.body
        # Whatever the (editable) template made of it: one "Re:" and one ticket tag.
        subject = reply_subject(framed.subject, ticket.id,
                                settings.get_value(settings.TAG_FORMAT))
        mail = OutgoingMail(
            from_address=channel.email,
            from_name=_sender_name(agent, department),
            to=[recipient], cc=cc, subject=subject, body_text=body,
            in_reply_to=last_in.message_id if last_in else None,
            references=[r for r in references if r],
            attachments=files,
            extra_headers={"X-Eddymail-Ticket": str(ticket.id)},
        )
        message = Message.create(
            ticket=ticket, direction="out", channel=channel, author_name=agent,
            from_address=channel.email, from_name=mail.from_name,
            to=[{"address": recipient, "name": ""}],
            cc=[{"address": address, "name": ""} for address in cc],
            subject=subject, body_text=body, sent_at=utcnow(),
            in_reply_to=[mail.in_reply_to] if mail.in_reply_to else [],
            references=list(mail.references),
        )
        for attachment in files:
            Attachment.create(message=message, filename=attachment.filename,
                              original_filename=attachment.filename,
                              content_type=attachment.content_type, size=len(attachment.data),
                              data=attachment.data)
        item = queue_mail(kind="reply", channel=channel, mail=mail, ticket=ticket,
                          message=message)
        ticket.status = "closed" if close else "pending"
        ticket.awaiting_reply = False
        ticket.last_activity_at = utcnow()
        ticket.message_count += 1
        ticket.save()
    return ReplyQueued(ticket.id, message.id, item.id, channel.email, [recipient], cc, subject,
                       ticket.status)


def note(ticket_id: int, text: str, *, agent: str) -> TicketChange:
    """An internal note: part of the thread, never mailed to anyone."""
    if not text.strip():
        raise ValidationError("The note is empty.")
    with database_proxy.atomic():
        ticket = find_ticket(ticket_id)
        message = Message.create(ticket=ticket, direction="note", author_name=agent,
                                 body_text=text.strip() + "\n")
        ticket.message_count += 1
        ticket.last_activity_at = utcnow()
        ticket.save()
    return _change(ticket, message)


def set_status(ticket_id: int, status: str, *, agent: str) -> TicketChange:
    """Close or reopen a ticket."""
    if status not in ("open", "pending", "closed"):
        raise ValidationError(f"Unknown status '{status}'.")
    with database_proxy.atomic():
        ticket = find_ticket(ticket_id)
        if ticket.status == status:
            return _change(ticket)
        message = _system(ticket, f"{agent} changed the status from {ticket.status} to {status}.")
        ticket.status = status
        ticket.save()
    return _change(ticket, message)


def move(ticket_id: int, department_name: str, *, agent: str) -> TicketChange:
    """Move a ticket to another department; its next reply goes out from that one's mailbox."""
    with database_proxy.atomic():
        ticket = find_ticket(ticket_id)
        target = find_department(department_name)
        source = Department.get_by_id(ticket.department_id)
        if target.id == source.id:
            return _change(ticket)
        message = _system(ticket, f"{agent} moved the ticket from {source.name} to {target.name}.")
        ticket.department = target
        ticket.save()
    return _change(ticket, message)


def assign(ticket_id: int, assignee: str | None, *, agent: str) -> TicketChange:
    """Give a ticket to someone (``None`` takes it back to the team)."""
    assignee = " ".join(assignee.split()) if assignee else None
    with database_proxy.atomic():
        ticket = find_ticket(ticket_id)
        text = (f"{agent} assigned the ticket to {assignee}." if assignee
                else f"{agent} unassigned the ticket.")
        message = _system(ticket, text)
        ticket.assignee = assignee
        ticket.save()
    return _change(ticket, message)


# --- helpers --------------------------------------------------------------------------------


def _outgoing_channel(department: Department) -> Channel:
    channel = (Channel.get_or_none(Channel.id == department.outgoing_channel_id)
               if department.outgoing_channel_id else None)
    if channel is None or not channel.smtp_host:
        raise ValidationError(
            f"Department {department.name} has no outgoing channel, so replies cannot be sent: "
            f"eddymail department edit \"{department.name}\" --outgoing-channel NAME."
        )
    return channel


def _recipient(ticket: Ticket) -> str:
    try:
        return validate_address(ticket.requester_address)
    except ValidationError:
        raise ValidationError(
            f"Ticket #{ticket.id} has no usable requester address "
            f"('{ticket.requester_address}'): it came from an unidentified sender."
        ) from None


def _sender_name(agent: str, department: Department) -> str:
    style = settings.get_value(settings.REPLY_FROM)
    if style == "agent":
        return agent
    if style == "department":
        return department.name
    return f"{agent}, {department.name}"


def _framed(text: str, ticket: Ticket, department: Department,
            agent: str) -> templates.RenderedTemplate:
    """The agent's text inside the ``reply`` template (greeting, signature)."""
    requester = ticket.requester if ticket.requester_id else None
    return notifications.render_for_department("reply", department, {
        "user": {"name": requester.name if requester else "", "email": ticket.requester_address},
        "ticket": {"id": ticket.id, "subject": ticket.subject},
        "agent": {"name": agent},
        "reply": {"body": text.strip()},
    }, even_if_off=True)


def _attachment(path: Path) -> OutgoingAttachment:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValidationError(f"Cannot attach {path}: {error.strerror}.") from None
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return OutgoingAttachment(filename=path.name, content_type=content_type, data=data)


def _system(ticket: Ticket, text: str) -> Message:
    ticket.last_activity_at = utcnow()
    ticket.message_count += 1
    return Message.create(ticket=ticket, direction="system", author_name="eddymail",
                          body_text=text)


def _change(ticket: Ticket, message: Message | None = None) -> TicketChange:
    department = Department.get_by_id(ticket.department_id)
    return TicketChange(ticket.id, ticket.status, department.name, ticket.assignee,
                        message.id if message else None)
