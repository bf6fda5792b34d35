"""Notification templates as staff manage them: list, show, edit, switch off, reset, preview.

Storage rules, shared with ``services.notifications.template_source`` (what sending uses):

- no ``Template`` row for (name, language): the shipped default text, switched on;
- a row with ``source`` None (or empty): the shipped default text;
- a row with ``enabled`` False: the notification is switched off (nothing is sent).

Switching on and off is done for every language at once, because the team thinks of "the
registration mail", not of its translations; texts are kept per language. A row that says
nothing beyond the defaults (default text, switched on) is deleted, so the table only holds
what staff changed and a future version's improved default texts reach everyone else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from eddymail import templates
from eddymail.db.connection import database_proxy
from eddymail.db.models import (
    Agent,
    Channel,
    Department,
    Message,
    StaffNotice,
    Template,
    Ticket,
    utcnow,
)
from eddymail.errors import ConflictError, UsageError, ValidationError
from eddymail.services import settings
from eddymail.services.actors import ANONYMOUS, Actor
from eddymail.services.outgoing import digests, notifications, staff
from eddymail.services.tickets.queries import find_ticket

# Templates that must always be available: why, and what to do instead.
ALWAYS_ON: dict[str, tuple[str, str]] = {
    "reply": (
        "it is the frame every staff reply is sent in (greeting, the reply text, signature), "
        "so switching it off would stop all replies",
        "Change its wording instead: eddymail template edit reply",
    ),
    "test_letter": (
        "it is the letter `eddymail channel test` sends to prove that a mailbox can send mail",
        "To check a channel without sending a letter: eddymail channel test NAME --no-send",
    ),
}

# What ``preview`` puts where the agent's text will go; the reply itself is not written yet.
REPLY_PLACEHOLDER: dict[str, str] = {
    "en": "(your reply text)",
    "ru": "(текст вашего ответа)",
}


@dataclass(frozen=True)
class VariableInfo:
    """A value a template may use, as ``template show`` lists it."""

    name: str
    description: str
    multiline: bool
    required: bool


@dataclass(frozen=True)
class TemplateSummary:
    """One template in one language, as ``template list`` shows it."""

    name: str
    description: str
    language: str
    enabled: bool
    customised: bool
    automatic: bool
    can_disable: bool
    updated_at: datetime | None
    audience: str  # customer | staff


@dataclass(frozen=True)
class TemplateDetail:
    """A template with its current text and the variables it may use (``template show``)."""

    name: str
    description: str
    language: str
    enabled: bool
    customised: bool
    automatic: bool
    can_disable: bool
    updated_at: datetime | None
    audience: str
    source: str
    variables: list[VariableInfo]


@dataclass(frozen=True)
class ResetResult:
    """What ``template reset`` did: the languages asked for and those that had edits."""

    name: str
    languages: list[str]
    restored: list[str]


@dataclass(frozen=True)
class Preview:
    """A template rendered as the customer would receive it.

    ``ticket_id`` is None when sample values were used; ``enabled`` False means the
    notification is switched off and this mail is not actually being sent.
    """

    template: str
    language: str
    ticket_id: int | None
    enabled: bool
    subject: str
    body: str


def team_language() -> str:
    """The language notifications are sent in (the ``language`` team setting)."""
    return settings.get_value(settings.LANGUAGE)


def list_templates(language: str | None = None) -> list[TemplateSummary]:
    """Every template in ``language`` (default: the team's), in the shipped order."""
    language = _language(language)
    rows = {
        row.name: row
        for row in Template.select().where(Template.language == language)
    }
    return [_summary(name, language, rows.get(name)) for name in templates.TEMPLATE_NAMES]


def show_template(name: str, language: str | None = None) -> TemplateDetail:
    """One template: its current text (stored or shipped) and its variables."""
    templates.spec(name)
    language = _language(language)
    return _detail(name, language, _row(name, language))


def save_template(
    name: str, language: str | None, source: str, *, expected: str | None = None
) -> TemplateDetail:
    """Store ``source`` as the text of ``name`` in ``language``, keeping it switched on or off.

    The text is checked first (``ValidationError`` with the line, nothing stored), and
    rendered with sample values (``try_rendering``): a text that fails then would fail at
    fetch time too, where it can only be skipped. A text
    equal to the shipped default is stored as "the default", so it stays not customised.
    ``expected``, when given, is the text the caller started editing from: if someone saved
    another text meanwhile, ``ConflictError`` rather than silently overwriting their work.
    """
    templates.spec(name)
    language = _language(language)
    # Editors on Windows add a BOM and CR LF; store the text the way every other one is.
    source = source.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    templates.validate(name, source)
    try_rendering(name, language, source)
    default = templates.default_source(name, language)
    stored: str | None = None if source.strip() == default.strip() else source
    with database_proxy.atomic():
        row = _row(name, language)
        if expected is not None and _text(name, language, row) != expected:
            raise ConflictError(
                f"Template {name!r} ({language}) was changed by someone else while you "
                "were editing it; nothing saved.",
                hint=f"See the new text with eddymail template show {name} --language "
                f"{language}, then edit again.",
            )
        if row is None:
            row = Template(name=name, language=language, enabled=True)
        row.source = stored
        row.updated_at = utcnow()
        if stored is None and row.enabled:
            _forget(row)
            row = None
        else:
            row.save()
    return _detail(name, language, row)


def try_rendering(name: str, language: str, source: str) -> None:
    """Render ``source`` with the sample values and with sparse ones; raise if either fails.

    Sparse values are what real mail often brings: a sender without a name, an empty
    subject. ``ValidationError`` names the line, as ``validate`` does.
    """
    sample = templates.sample_context(name, language)
    for context in (sample, _sparse(sample)):
        try:
            templates.render(name, source, context)
        except ValidationError as error:
            raise ValidationError(f"{error.message} (rendering it with sample values); "
                                  "nothing saved", hint=error.hint) from None


def _sparse(context: dict) -> dict:
    """``context`` with every text emptied, except codes the template must carry."""
    return {key: _sparse(value) if isinstance(value, dict)
            else "" if isinstance(value, str) and key != "token" else value
            for key, value in context.items()}


def set_enabled(name: str, enabled: bool) -> TemplateSummary:
    """Switch notification ``name`` on or off in every language.

    ``UsageError`` for the templates that must stay on (``ALWAYS_ON``), with the reason.
    Returns the template as seen in the team's language.
    """
    templates.spec(name)
    if not enabled and name in ALWAYS_ON:
        reason, hint = ALWAYS_ON[name]
        raise UsageError(f"The {name} template cannot be switched off: {reason}.", hint=hint)
    with database_proxy.atomic():
        for language in templates.LANGUAGES:
            row = _row(name, language)
            if row is None:
                if enabled:
                    continue  # no row is already "switched on, default text"
                row = Template(name=name, language=language, source=None)
            row.enabled = enabled
            row.updated_at = utcnow()
            if enabled and not row.source:
                _forget(row)
            else:
                row.save()
    language = team_language()
    return _summary(name, language, _row(name, language))


def reset_template(
    name: str, language: str | None = None, *, all_languages: bool = False
) -> ResetResult:
    """Go back to the shipped text in ``language`` (or all), keeping the on/off switch."""
    templates.spec(name)
    languages = list(templates.LANGUAGES) if all_languages else [_language(language)]
    restored: list[str] = []
    with database_proxy.atomic():
        for code in languages:
            row = _row(name, code)
            if row is None or row.source is None:
                continue
            if row.source:
                restored.append(code)
            if row.enabled:
                _forget(row)
            else:
                row.source = None
                row.updated_at = utcnow()
                row.save()
    return ResetResult(name=name, languages=languages, restored=restored)


def preview_template(
    name: str,
    language: str | None = None,
    *,
    ticket_id: int | None = None,
    actor: Actor = ANONYMOUS,
) -> Preview:
    """Render template ``name`` as it would be sent now.

    With ``ticket_id`` the values come from that ticket (its requester, subject, department;
    for ``reply`` a placeholder where the agent's text goes, signed by ``actor``; for
    ``test_letter`` the department's outgoing channel and a sample code; for the staff
    templates its last customer message, as ``actor`` would receive it); without it, the
    shipped sample values. A switched-off template is rendered too, so it can be checked
    before switching it back on. ``ValidationError`` when the stored text cannot render.
    """
    templates.spec(name)
    language = _language(language)
    row = _row(name, language)
    if ticket_id is None:
        context = templates.sample_context(name, language)
        helpdesk = settings.get_value(settings.HELPDESK_NAME)
        if helpdesk:
            # The team's real name reads better than "Acme Corp" when it is known.
            context["helpdesk"] = {"name": helpdesk}
    else:
        context = _ticket_context(name, language, find_ticket(ticket_id), actor)
    rendered = templates.render(name, _text(name, language, row), context)
    return Preview(
        template=name,
        language=language,
        ticket_id=ticket_id,
        enabled=row is None or row.enabled,
        subject=rendered.subject,
        body=rendered.body,
    )


# --- helpers -------------------------------------------------------------------------------


def _language(language: str | None) -> str:
    if language is None:
        return team_language()
    code = language.strip().lower()
    if code not in templates.LANGUAGES:
        raise ValidationError(
            f"There are no templates in language {language!r}; "
            f"the languages are: {', '.join(templates.LANGUAGES)}."
        )
    return code


def _row(name: str, language: str) -> Template | None:
    return Template.get_or_none((Template.name == name) & (Template.language == language))


def _forget(row: Template) -> None:
    if row.id is not None:
        row.delete_instance()


def _text(name: str, language: str, row: Template | None) -> str:
    # Same rule as notifications.template_source, minus the switch: an empty stored text
    # is the default there too.
    if row is not None and row.source:
        return row.source
    return templates.default_source(name, language)


def _summary(name: str, language: str, row: Template | None) -> TemplateSummary:
    template_spec = templates.spec(name)
    return TemplateSummary(
        name=name,
        description=template_spec.description,
        language=language,
        enabled=row is None or row.enabled,
        customised=row is not None and bool(row.source),
        automatic=template_spec.automatic,
        can_disable=name not in ALWAYS_ON,
        updated_at=row.updated_at if row is not None else None,
        audience=template_spec.audience,
    )


def _detail(name: str, language: str, row: Template | None) -> TemplateDetail:
    summary = _summary(name, language, row)
    return TemplateDetail(
        name=summary.name,
        description=summary.description,
        language=summary.language,
        enabled=summary.enabled,
        customised=summary.customised,
        automatic=summary.automatic,
        can_disable=summary.can_disable,
        updated_at=summary.updated_at,
        audience=summary.audience,
        source=_text(name, language, row),
        variables=[
            VariableInfo(v.name, v.description, v.multiline, v.required)
            for v in templates.spec(name).variables
        ],
    )


def _ticket_context(name: str, language: str, ticket: Ticket, actor: Actor) -> dict:
    department: Department = ticket.department
    if templates.spec(name).audience == "staff":
        return _staff_context(name, language, ticket, department, actor)
    requester = ticket.requester if ticket.requester_id else None
    helpdesk = notifications.helpdesk_name(department)
    context: dict[str, object] = {
        "user": {
            "name": requester.name if requester else "",
            "email": requester.email if requester else ticket.requester_address,
        },
        "ticket": {"id": ticket.id, "subject": ticket.subject},
        "department": {"name": department.name},
        "helpdesk": {"name": helpdesk},
    }
    if name == "reply":
        context["reply"] = {"body": REPLY_PLACEHOLDER.get(language, REPLY_PLACEHOLDER["en"])}
        context["agent"] = {"name": actor.name, "signature": actor.signature}
    elif name == "test_letter":
        sample = templates.sample_context(name, language)
        context["token"] = sample["token"]
        channel = _outgoing_channel(department)
        context["channel"] = (
            {"name": channel.name, "email": channel.email} if channel else sample["channel"]
        )
    return context


def _staff_context(name: str, language: str, ticket: Ticket, department: Department,
                   actor: Actor) -> dict:
    agent = Agent.get_or_none(Agent.id == actor.agent_id) if actor.agent_id else None
    last_in = (Message.select().where((Message.ticket == ticket) & (Message.direction == "in"))
               .order_by(Message.created_at.desc(), Message.id.desc()).first())
    context = staff.staff_context(ticket, last_in, agent, assigned_by=actor.label,
                                  language=language)
    if name == "staff_digest":
        notice = StaffNotice(ticket=ticket, message=last_in, kind=staff.NEW_TICKET)
        context["digest"] = {"count": 1, "new_tickets": 1, "replies": 0, "assigned": 0,
                             "text": digests.digest_text([notice])}
    return {**context, "department": {"name": department.name},
            "helpdesk": {"name": notifications.helpdesk_name(department)}}


def _outgoing_channel(department: Department) -> Channel | None:
    if department.outgoing_channel_id is None:
        return None
    return Channel.get_or_none(Channel.id == department.outgoing_channel_id)

