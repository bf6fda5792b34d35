"""The outbox: every outgoing mail is a row first, and is sent after the commit.

A row is written in the same transaction as the ticket message it belongs to, so a crash
can never leave a reply that was recorded but not queued (or sent but not recorded). Sending
happens later (``send_due``), marks the row sent only once the server accepted the mail,
and keeps a failed row queued with its error and a back-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from eddymail.mail.compose import OutgoingMail, build_message, envelope_recipients, make_message_id
from eddymail.models import Channel, Message, OutboxItem, Ticket, utcnow


@dataclass(frozen=True)
class OutboxEntry:
    """An outbox row as shown by ``outbox list``."""

    id: int
    kind: str
    template: str | None
    channel: str | None
    ticket_id: int | None
    recipients: list[str]
    subject: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def queue_mail(
    *,
    kind: str,
    channel: Channel,
    mail: OutgoingMail,
    ticket: Ticket | None = None,
    message: Message | None = None,
    template: str | None = None,
) -> OutboxItem:
    """Compose ``mail`` into its final bytes and queue it; call inside the caller's transaction.

    The Message-ID is minted now, on the channel's domain, so threading headers of the
    customer's answer can be matched to this ticket even before the mail is sent.
    """
    message_id = make_message_id(channel.email)
    raw = build_message(mail, message_id=message_id)
    recipients = envelope_recipients(mail)
    item = OutboxItem.create(
        kind=kind,
        template=template,
        channel=channel,
        ticket=ticket,
        message=message,
        mail_from=channel.email,
        recipients=recipients,
        recipient=recipients[0].lower() if recipients else "",
        raw=raw,
        message_id=message_id,
        automatic=mail.automatic,
        next_attempt_at=utcnow(),
    )
    if message is not None and not message.message_id:
        message.message_id = message_id
        message.save()
    return item
