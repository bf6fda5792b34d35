"""An agent who answers a staff notification by mail adds a note to its ticket.

Staff notifications say "do not reply", and an agent on a phone will reply anyway. Without
this, the answer came back through the channel's mailbox as a customer's new ticket: every
agent was told of it, and the agent's words (perhaps "this one is spam") sat in a ticket as
if a customer had written them. Now such an answer becomes an internal note by that agent
on the ticket the notification was about (followed through merges): no customer sees it,
nobody is notified, no one is registered.

Both must hold: the mail names the notification's Message-ID (random, sent to that agent
alone) in In-Reply-To or References, and it comes From that agent's address; and the
provider's sender check must not have failed. Anything else (a stranger, a forged From, an
agent answering a digest, which covers several tickets) takes the ordinary way.
"""

from __future__ import annotations

from dataclasses import dataclass

from eddymail.db.models import Agent, OutboxItem, Ticket
from eddymail.mail.message.addresskeys import address_key
from eddymail.mail.message.parse import ParsedMessage
from eddymail.services.ingest.threads import current_ticket
from eddymail.services.outgoing import staff


@dataclass(frozen=True)
class StaffAnswer:
    """The ticket a staff notification was about, and the agent who answered it."""

    ticket: Ticket
    agent: Agent


def answered_notification(parsed: ParsedMessage, run: staff.StaffRun | None, *,
                          trusted: bool) -> StaffAnswer | None:
    """The notification ``parsed`` answers, if its sender is the agent it went to."""
    if not trusted or run is None or parsed.from_ is None or not parsed.sender_valid:
        return None
    sender = address_key(parsed.from_.address)
    agent = run.agent_by_address(sender)  # customers' mail stops here, at no query's cost
    if agent is None:
        return None
    ids = list(dict.fromkeys([*parsed.in_reply_to, *parsed.references]))
    if not ids:
        return None
    for item in OutboxItem.select(OutboxItem.ticket, OutboxItem.recipient).where(
        OutboxItem.message_id.in_(ids) & (OutboxItem.kind == staff.KIND)
        & OutboxItem.ticket.is_null(False)
    ):
        ticket = current_ticket(item.ticket_id)
        if address_key(item.recipient) == sender and ticket is not None:
            return StaffAnswer(ticket, agent)
    return None
