"""Staff replies: who they go to, what they carry, how they are framed and signed.

A reply goes To the requester and Cc every participant of the ticket; per reply ``--to``
replaces the To, ``--cc`` and ``--bcc`` add people, ``--no-cc`` leaves the participants out.
Whoever the agent adds in To or Cc becomes a participant (the agent vouched for them), so
their answers join the ticket; Bcc recipients stay blind and are not. The greeting names the
person addressed, and only when exactly one person is.

It goes out from the outgoing channel of the department the ticket is in *now*, signed by
the acting agent (or the department), stored as a thread message and queued in the outbox in
one transaction; sending happens after the commit.
"""

from __future__ import annotations

import mimetypes
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from eddymail import templates
from eddymail.db.connection import database_proxy
from eddymail.db.models import Attachment, Channel, Department, Message, Ticket, User, utcnow
from eddymail.errors import ValidationError
from eddymail.mail.message.compose import OutgoingAttachment, OutgoingMail, validate_address
from eddymail.mail.message.markdown import reply_html
from eddymail.mail.message.subjects import reply_subject
from eddymail.services import settings
from eddymail.services.actors import Actor
from eddymail.services.outgoing import notifications
from eddymail.services.outgoing.outbox import queue_mail
from eddymail.services.tickets import history, search, users
from eddymail.services.tickets.queries import active_ticket

DEFAULT_MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024  # what common providers accept in one message


@dataclass(frozen=True)
class ReplyOptions:
    """Who a reply goes to and what it carries, beyond the defaults."""

    to: Sequence[str] = ()  # empty: the requester
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    no_cc: bool = False  # leave the ticket's participants out of Cc
    attachments: Sequence[Path] = ()
    close: bool = False
    html: bool = False  # add an HTML part rendered from the text's Markdown
    max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES


@dataclass(frozen=True)
class ReplyQueued:
    """A reply stored in the thread and waiting in the outbox."""

    ticket_id: int
    message_id: int
    outbox_id: int
    from_address: str
    to: list[str]
    cc: list[str]
    bcc: list[str]
    subject: str
    status: str
    html: bool
    agent: str | None


@dataclass(frozen=True)
class _Recipients:
    to: list[str]
    cc: list[str]
    bcc: list[str]
    added: list[str]  # addresses the agent named that become participants


def reply(ticket_id: int, text: str, *, actor: Actor,
          options: ReplyOptions = ReplyOptions()) -> ReplyQueued:
    """Store a staff reply and queue it from the ticket's current department's mailbox."""
    if not text.strip():
        raise ValidationError("The reply is empty; nothing was sent.")
    files = [_attachment(path) for path in options.attachments]
    total = sum(len(f.data) for f in files)
    if total > options.max_attachment_bytes:
        raise ValidationError(
            f"The attachments have {total} bytes together, over the limit of "
            f"{options.max_attachment_bytes} ([reply] max_attachment_bytes); most mail "
            "servers refuse such a message.")
    body = text.strip()
    with database_proxy.atomic():
        ticket = active_ticket(ticket_id)
        department = Department.get_by_id(ticket.department_id)
        channel = _outgoing_channel(department)
        recipients = _recipients(ticket, options)
        last_in = (Message.select().where((Message.ticket == ticket) & (Message.direction == "in"))
                   .order_by(Message.created_at.desc(), Message.id.desc()).first())
        references = [*(last_in.references or []), last_in.message_id] if last_in else []
        addressee = recipients.to[0] if len(recipients.to) == 1 else None
        framed = _framed(body, ticket, department, actor, addressee)
        html_body = None
        if options.html:
            token = f"EDDYMAIL-REPLY-{secrets.token_hex(8)}"
            html_body = reply_html(
                _framed(token, ticket, department, actor, addressee).body, token, body)
        # Whatever the (editable) template made of it: one "Re:" and one ticket tag.
        subject = reply_subject(framed.subject, ticket.id,
                                settings.get_value(settings.TAG_FORMAT))
        mail = OutgoingMail(
            from_address=channel.email, from_name=_sender_name(actor, department),
            to=recipients.to, cc=recipients.cc, bcc=recipients.bcc, subject=subject,
            body_text=framed.body, body_html=html_body,
            in_reply_to=last_in.message_id if last_in else None,
            references=[r for r in references if r], attachments=files,
            extra_headers={"X-Eddymail-Ticket": str(ticket.id)},
        )
        message = Message.create(
            ticket=ticket, direction="out", channel=channel, author_name=actor.name,
            from_address=channel.email, from_name=mail.from_name,
            to=_entries(mail.to), cc=_entries(mail.cc), bcc=_entries(mail.bcc),
            subject=subject, body_text=framed.body, has_html=html_body is not None,
            sent_at=utcnow(), in_reply_to=[mail.in_reply_to] if mail.in_reply_to else [],
            references=list(mail.references),
        )
        search.index_message(message)
        for attachment in files:
            Attachment.create(message=message, filename=attachment.filename,
                              original_filename=attachment.filename,
                              content_type=attachment.content_type, size=len(attachment.data),
                              data=attachment.data)
        item = queue_mail(kind="reply", channel=channel, mail=mail, ticket=ticket,
                          message=message)
        _add_participants(ticket, recipients.added)
        history.record(ticket, actor, history.REPLY, message=message, detail={
            "to": list(mail.to), "cc": list(mail.cc), "bcc": list(mail.bcc),
            "attachments": [f.filename for f in files], "html": html_body is not None})
        if options.close and ticket.status != "closed":
            history.record(ticket, actor, history.CLOSE, detail={"from": ticket.status})
        ticket.status = "closed" if options.close else "pending"
        ticket.awaiting_reply = False
        ticket.last_activity_at = utcnow()
        ticket.message_count += 1
        ticket.save()
    return ReplyQueued(ticket.id, message.id, item.id, channel.email, list(mail.to),
                       list(mail.cc), list(mail.bcc), subject, ticket.status,
                       html_body is not None, actor.handle)


def typed_address(text: str) -> str:
    """An address an agent typed: plain, or copied from a mail client as ``Name <address>``
    (the name is dropped: people are known by their address). Anything else, a list among
    it, or a line break anywhere, is refused by ``validate_address``."""
    name, bracket, rest = text.strip().rpartition("<")
    plain = (bracket and rest.endswith(">") and "@" not in name and ">" not in name
             and text.isprintable())
    try:
        return validate_address(rest[:-1] if plain else text)
    except ValidationError as error:
        raise ValidationError(error.message, hint="Give one address, plain "
                              "(boss@example.com) or as Name <boss@example.com>; repeat the "
                              "option for more.") from None


def _recipients(ticket: Ticket, options: ReplyOptions) -> _Recipients:
    to = [typed_address(address) for address in options.to] or [_requester(ticket)]
    explicit_cc = [typed_address(address) for address in options.cc]
    bcc = [typed_address(address) for address in options.bcc]
    participants = [] if options.no_cc else users.participant_list(ticket)
    seen = {address.casefold() for address in to}
    cc = []
    for address in [*participants, *explicit_cc]:
        if address.casefold() not in seen:
            seen.add(address.casefold())
            cc.append(address)
    requester = ticket.requester_address.casefold()
    named = (to if options.to else []) + explicit_cc
    added = [address for address in named if address.casefold() != requester]
    return _Recipients(to, cc, bcc, added)


def _add_participants(ticket: Ticket, addresses: list[str]) -> None:
    own = notifications.own_addresses()
    people = [users.get_or_create_user(address, "", registered_by="staff")[0]
              for address in addresses if address.lower() not in own]
    users.add_participants(ticket, people)


def _entries(addresses: Sequence[str]) -> list[dict]:
    return [{"address": address, "name": ""} for address in addresses]


def _outgoing_channel(department: Department) -> Channel:
    channel = (Channel.get_or_none(Channel.id == department.outgoing_channel_id)
               if department.outgoing_channel_id else None)
    if channel is None or not channel.smtp_host:
        raise ValidationError(
            f"Department {department.name} has no outgoing channel, so replies cannot be sent: "
            f"eddymail department edit \"{department.name}\" --outgoing-channel NAME."
        )
    return channel


def _requester(ticket: Ticket) -> str:
    try:
        return validate_address(ticket.requester_address)
    except ValidationError:
        raise ValidationError(
            f"Ticket #{ticket.id} has no usable requester address "
            f"('{ticket.requester_address}'): it came from an unidentified sender. "
            "Address the reply with --to ADDRESS."
        ) from None


def _sender_name(actor: Actor, department: Department) -> str:
    style = settings.get_value(settings.REPLY_FROM)
    if style == "department" or not actor.name:
        return department.name
    if style == "agent":
        return actor.name
    return f"{actor.name}, {department.name}"


def _framed(text: str, ticket: Ticket, department: Department, actor: Actor,
            addressee: str | None) -> templates.RenderedTemplate:
    """The agent's text inside the ``reply`` template (greeting, signature).

    ``user`` is the person addressed, so the greeting names whoever the reply goes to; with
    several people in To it names nobody.
    """
    person = User.get_or_none(User.email == addressee.lower()) if addressee else None
    rendered = notifications.render_for_department("reply", department, {
        "user": {"name": person.name if person else "", "email": addressee or ""},
        "ticket": {"id": ticket.id, "subject": ticket.subject},
        "agent": {"name": actor.name, "signature": actor.signature},
        "reply": {"body": text},
    }, even_if_off=True)
    assert rendered is not None  # even_if_off: the shipped text at worst
    return rendered


def _attachment(path: Path) -> OutgoingAttachment:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ValidationError(f"Cannot attach {path}: {error.strerror}.") from None
    content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return OutgoingAttachment(filename=path.name, content_type=content_type, data=data)
