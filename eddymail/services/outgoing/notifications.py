"""Automatic mail to customers (registration and the like): whether, from where, what.

The rules that keep a helpdesk from becoming a spam relay or a mail loop live here:
no automatic mail in answer to automatic mail, bounces, mailing lists, our own addresses or
an unidentified sender; at most a few per recipient and a global number per day; never the
customer's own text quoted back (the templates offer no variable for it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Literal, cast, overload

from eddymail.db.models import Channel, Department, OutboxItem, Template, Ticket, User, utcnow
from eddymail.errors import ValidationError
from eddymail.mail.message.addresskeys import address_key
from eddymail.services import settings

# The templates, the composer and the outbox are imported where a notification is made:
# every run asks who sends notifications and which addresses are ours, most runs send none.
if TYPE_CHECKING:
    from eddymail import templates
    from eddymail.mail.message.compose import OutgoingMail

DAY = timedelta(days=1)


def sender_channel(department: Department) -> Channel | None:
    """The channel system notifications go out from: ``system-channel``, else the department's."""
    channel_id = settings.get_value(settings.SYSTEM_CHANNEL)
    if channel_id is None:
        channel_id = department.outgoing_channel_id
    if channel_id is None:
        return None
    channel = Channel.get_or_none(Channel.id == channel_id)
    return channel if channel is not None and channel.smtp_host else None


def template_source(name: str, language: str) -> str | None:
    """The text of template ``name`` in ``language``, or None when staff switched it off."""
    from eddymail import templates

    row = Template.get_or_none((Template.name == name) & (Template.language == language))
    if row is None:
        return templates.default_source(name, language)
    if not row.enabled:
        return None
    return row.source or templates.default_source(name, language)


def over_daily_caps(recipient: str) -> str | None:
    """Why no more automatic mail may go to ``recipient`` today, or None when it may."""
    since = utcnow() - DAY
    # Customers' notifications only: staff notifications go to the team's own addresses.
    automatic = OutboxItem.select().where(OutboxItem.automatic & (OutboxItem.kind != "staff")
                                          & (OutboxItem.created_at >= since))
    per_recipient = settings.get_value(settings.AUTO_MAIL_PER_RECIPIENT)
    if automatic.where(OutboxItem.recipient == address_key(recipient)).count() >= per_recipient:
        return f"{recipient} already got {per_recipient} automatic mails in 24 hours"
    per_day = settings.get_value(settings.AUTO_MAIL_PER_DAY)
    if automatic.count() >= per_day:
        return f"the daily limit of {per_day} automatic mails is reached"
    return None


def queue_notification(
    name: str, *, ticket: Ticket, user: User, department: Department,
    sender: Channel | None, own: set[str],
) -> tuple[OutboxItem | None, str | None]:
    """Render and queue notification ``name`` for ``user``; (row, None) or (None, why not).

    ``sender`` (``sender_channel(department)``) and ``own`` (``own_addresses()``) are looked
    up once per run by the caller, not once per message.
    """
    channel = sender
    if channel is None:
        return None, (
            "no channel can send notifications: set one with eddymail settings set "
            "system-channel NAME, or give the department an outgoing channel"
        )
    if address_key(user.email) in own:
        return None, "the recipient is one of our own channels"
    reason = over_daily_caps(user.email)
    if reason:
        return None, reason
    # Neither a customer's address nor a staff member's template may fail the message (or
    # the whole batch) that triggered this mail: that mail is skipped, the log says why.
    from eddymail.mail.message.compose import validate_address
    from eddymail.services.outgoing.outbox import queue_mail

    try:
        validate_address(user.email)
        # The ticket number only: nothing the sender wrote (see templates.defaults).
        rendered = render_for_department(name, department, {"ticket": {"id": ticket.id}})
        if rendered is None:
            return None, f"the {name} template is switched off"
        mail = automatic_mail(channel, department, rendered, to=user.email,
                              extra_headers={"X-Eddymail-Ticket": str(ticket.id)},
                              reply_to=department_mailbox(department))
    except ValidationError as error:
        return None, skipped(name, channel, error, ticket_id=ticket.id)
    item = queue_mail(kind="notification", channel=channel, mail=mail, ticket=ticket,
                      template=name)
    return item, None


def skipped(name: str, channel: Channel, error: ValidationError, *, ticket_id: int) -> str:
    """Record in the error log that notification ``name`` was not sent; return why."""
    from eddymail.services import errorlog  # (a failure's path: not loaded by every ingest)

    reason = f"not sent: {error.message}"
    errorlog.record_failure(
        channel=channel, operation=f"{name} notification for ticket #{ticket_id}",
        error=ValidationError(f"The {name} notification for ticket #{ticket_id} was {reason}",
                              hint=error.hint))
    return reason


def helpdesk_name(department: Department) -> str:
    """The name customers know us by: the ``helpdesk-name`` setting, else the department's."""
    return settings.get_value(settings.HELPDESK_NAME) or department.name


@overload
def render_for_department(name: str, department: Department, context: dict, *,
                          even_if_off: Literal[True]) -> templates.RenderedTemplate: ...


@overload
def render_for_department(name: str, department: Department, context: dict, *,
                          even_if_off: bool = False) -> templates.RenderedTemplate | None: ...


def render_for_department(name: str, department: Department, context: dict, *,
                          even_if_off: bool = False) -> templates.RenderedTemplate | None:
    """Template ``name`` in the team's language, with ``department`` and ``helpdesk`` filled in.

    None when staff switched it off, unless ``even_if_off`` (the reply frame and the test
    letter are not notifications one may silence: then the shipped text is used).
    """
    from eddymail import templates

    language = settings.get_value(settings.LANGUAGE)
    source = template_source(name, language)
    if source is None:
        if not even_if_off:
            return None
        source = templates.default_source(name, language)
    return templates.render(name, source, {
        **context,
        "department": {"name": department.name},
        "helpdesk": {"name": helpdesk_name(department)},
    })


def department_mailbox(department: Department) -> list[str]:
    """Where an answer to the department's notifications should go: a mailbox we fetch.

    Notifications may leave from the ``system-channel`` (a no-reply mailbox, or another
    department's); a customer who answers one must still reach this department. Its
    outgoing channel when that one is fetched, else any fetched channel of it; [] if none.
    """
    channels = list(Channel.select(Channel.id, Channel.email).where(
        (Channel.department == department) & (Channel.protocol != "none")
    ).order_by(Channel.id))
    preferred = [c for c in channels if c.id == department.outgoing_channel_id] or channels
    return [preferred[0].email] if preferred else []


def automatic_mail(channel: Channel, department: Department, rendered: templates.RenderedTemplate,
                   *, to: str, extra_headers: dict[str, str],
                   auto_submitted: str = "auto-replied",
                   reply_to: list[str] | None = None) -> OutgoingMail:
    """A rendered template as mail that no person wrote (RFC 3834 headers come with it)."""
    from eddymail.mail.message.compose import OutgoingMail

    return OutgoingMail(
        from_address=channel.email,
        from_name=channel.display_name or helpdesk_name(department),
        to=[to],
        cc=[],
        subject=rendered.subject,
        body_text=rendered.body,
        automatic=True,
        auto_submitted=auto_submitted,
        extra_headers=extra_headers,
        reply_to=reply_to or [],
    )


def own_addresses() -> set[str]:
    """Every channel's address as its ``address_key``: mail from or to them is ours."""
    # peewee's stubs type .tuples() rows as models, hence the cast
    rows = cast(Iterable[tuple[str]], Channel.select(Channel.email).tuples())
    return {address_key(address) for (address,) in rows}
