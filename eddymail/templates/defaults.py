"""What ships with eddymail: the notification templates, their variables and default texts.

The default texts are Python strings rather than package data files: they then travel with
the code in any install (wheel, zipapp, editable checkout) without packaging configuration,
and a test can read them like any other constant. They are written in the same format staff
edit (see ``eddymail.templates.engine``), so ``template reset`` simply stores them again.
"""

from __future__ import annotations

from eddymail.errors import NotFoundError
from eddymail.templates import staff
from eddymail.templates.specs import (
    DEPARTMENT,
    HELPDESK,
    TICKET_ID,
    TICKET_SUBJECT,
    TemplateSpec,
    TemplateVariable,
)

__all__ = ["LANGUAGES", "TEMPLATE_NAMES", "TemplateSpec", "TemplateVariable", "default_source",
           "sample_context", "spec"]


LANGUAGES: tuple[str, ...] = ("en", "ru")

_USER_NAME = TemplateVariable("user.name", "Customer's name from their email (may be empty)")
_USER_EMAIL = TemplateVariable("user.email", "Customer's email address")

# Automatic notifications go to addresses nobody has verified (anyone can write any From):
# they offer only values the team wrote, never the sender's name, address or subject, so
# the company's mailbox cannot be made to mail a stranger's words to anyone.
_TEAM_WRITTEN = (TICKET_ID, DEPARTMENT, HELPDESK)

_SPECS: dict[str, TemplateSpec] = {
    spec.name: spec
    for spec in (
        TemplateSpec(
            name="registration",
            description="Sent to a new user created automatically from an unknown sender",
            variables=_TEAM_WRITTEN,
            automatic=True,
        ),
        TemplateSpec(
            name="ticket_created",
            description="Confirms to the customer that their email opened a new ticket",
            variables=_TEAM_WRITTEN,
            automatic=True,
        ),
        TemplateSpec(
            name="reply",
            description="Frames a staff reply: greeting, the agent's text, signature",
            variables=(
                TemplateVariable("user.name", "Name of the person the reply is addressed to "
                                 "(empty when unknown or when it goes to several)"),
                TemplateVariable("user.email", "Address the reply is sent to"),
                TICKET_ID,
                TICKET_SUBJECT,
                TemplateVariable("reply.body", "The agent's reply text", multiline=True),
                TemplateVariable("agent.name", "Name of the agent who replies (may be empty)"),
                TemplateVariable("agent.signature", "The agent's own signature (may be empty)",
                                 multiline=True),
                DEPARTMENT,
                HELPDESK,
            ),
            automatic=False,
        ),
        TemplateSpec(
            name="test_letter",
            description="Sent by `channel test` to the channel's own mailbox to prove delivery",
            variables=(
                TemplateVariable(
                    "token",
                    "Unique code `channel test` looks for to prove delivery",
                    required=True,
                ),
                TemplateVariable("channel.name", "Name of the channel being tested"),
                TemplateVariable("channel.email", "Address of the channel's mailbox"),
                TemplateVariable("department.name", "Department the channel belongs to"),
                HELPDESK,
            ),
            automatic=True,
        ),
        *staff.SPECS,
    )
}

TEMPLATE_NAMES: tuple[str, ...] = tuple(_SPECS)


def spec(name: str) -> TemplateSpec:
    """The specification of the template called ``name``.

    Raises ``NotFoundError`` naming the templates that do exist.
    """
    try:
        return _SPECS[name]
    except KeyError:
        raise NotFoundError(
            f"There is no notification template called {name!r}; "
            f"the templates are: {', '.join(TEMPLATE_NAMES)}."
        ) from None


def _language(language: str) -> str:
    # Accept what a locale or a config file is likely to hold: "RU", "ru_RU", "en-GB".
    code = language.strip().lower().replace("-", "_").split("_")[0]
    if code not in LANGUAGES:
        raise NotFoundError(
            f"There are no default texts in language {language!r}; "
            f"available: {', '.join(LANGUAGES)}."
        )
    return code


def default_source(name: str, language: str) -> str:
    """The shipped text of template ``name`` in ``language`` (``en`` or ``ru``)."""
    spec(name)
    return _TEXTS[_language(language)][name]


def sample_context(name: str, language: str) -> dict[str, object]:
    """Realistic values for every variable of ``name``, for ``template preview``.

    The result has the same shape ``render`` expects: ``{"ticket": {"id": 1042, ...}, ...}``.
    """
    code = _language(language)
    samples = {**_SAMPLES[code], **staff.SAMPLES[code]}
    context: dict[str, object] = {}
    for variable in spec(name).variables:
        *parents, leaf = variable.name.split(".")
        level = context
        for parent in parents:
            level = level.setdefault(parent, {})  # type: ignore[assignment]
        level[leaf] = samples[variable.name]
    return context


# The signature separator is "-- " with a trailing space (RFC 3676 section 4.3): mail clients
# then grey out the footer and leave it out of quotes. Spelt as an escape so that editors and
# linters do not strip the space.
_SIGNATURE = "--\x20\n"

# How a letter the team sends is signed: the department, and the helpdesk when it has another
# name. Names stand alone on their lines, so they read right in any language and any case
# ("Support" never becomes "Support support", "Бухгалтерия" is never declined).
_SIGNED_EN = """\
{{ department.name }}{% if helpdesk.name != department.name %}
{{ helpdesk.name }}{% endif %}
"""
_SIGNED_RU = _SIGNED_EN

_EN = {
    "registration": """\
Subject: [#{{ ticket.id }}] Your request to {{ helpdesk.name }} is registered

Hello,

We have received a message sent from this address and registered it with
our helpdesk:

  Ticket number: {{ ticket.id }}
  Department: {{ department.name }}

All answers about it will come to this address; there is nothing you need
to do. To add anything, reply to this message and keep [#{{ ticket.id }}]
in the subject line.

If you did not write to us, someone used your address: you may ignore
this message.

Kind regards,
""" + _SIGNED_EN,
    "ticket_created": """\
Subject: [#{{ ticket.id }}] Request received

Hello,

We have received your request and logged it:

  Ticket number: {{ ticket.id }}
  Department: {{ department.name }}

We will get back to you as soon as we can. To add anything, reply to this
message and keep [#{{ ticket.id }}] in the subject line.

If you did not write to us, someone used your address: you may ignore
this message.

Kind regards,
""" + _SIGNED_EN,
    "reply": """\
Subject: Re: [#{{ ticket.id }}] {{ ticket.subject or "(no subject)" }}

{% if user.name %}Hello {{ user.name }},{% else %}Hello,{% endif %}

{{ reply.body }}

Kind regards,
{% if agent.signature %}{{ agent.signature }}{% else %}{% if agent.name %}{{ agent.name }}
{% endif %}""" + _SIGNED_EN.rstrip("\n") + """{% endif %}

"""
    + _SIGNATURE
    + """\
Ticket #{{ ticket.id }}. To add anything, just reply to this message and
keep [#{{ ticket.id }}] in the subject line.
""",
    "test_letter": """\
Subject: Test letter for channel {{ channel.name }} [{{ token }}]

Hello,

This is a test letter. eddymail sent it to check that outgoing mail works
for this mailbox:

  Helpdesk: {{ helpdesk.name }}
  Channel: {{ channel.name }}
  Address: {{ channel.email }}
  Department: {{ department.name }}
  Check code: {{ token }}

If you can read this, the channel can send mail. Nothing else needs to be
done; you may delete this message.
""",
}

_RU = {
    "registration": """\
Subject: [#{{ ticket.id }}] Обращение зарегистрировано ({{ helpdesk.name }})

Здравствуйте!

Мы получили письмо, отправленное с этого адреса, и зарегистрировали его
в нашей службе поддержки:

  Номер обращения: {{ ticket.id }}
  Отдел: {{ department.name }}

Все ответы по нему будут приходить на этот адрес, ничего делать не нужно.
Если захотите что-то добавить, ответьте на это письмо, не удаляя из темы
номер [#{{ ticket.id }}].

Если вы нам не писали, кто-то воспользовался вашим адресом: это письмо
можно просто удалить.

С уважением,
""" + _SIGNED_RU,
    "ticket_created": """\
Subject: [#{{ ticket.id }}] Обращение принято

Здравствуйте!

Ваше обращение получено и зарегистрировано:

  Номер обращения: {{ ticket.id }}
  Отдел: {{ department.name }}

Мы ответим вам в ближайшее время. Если захотите что-то добавить, ответьте
на это письмо, не удаляя из темы номер [#{{ ticket.id }}].

Если вы нам не писали, кто-то воспользовался вашим адресом: это письмо
можно просто удалить.

С уважением,
""" + _SIGNED_RU,
    "reply": """\
Subject: Re: [#{{ ticket.id }}] {{ ticket.subject or "(без темы)" }}

{% if user.name %}Здравствуйте, {{ user.name }}!{% else %}Здравствуйте!{% endif %}

{{ reply.body }}

С уважением,
{% if agent.signature %}{{ agent.signature }}{% else %}{% if agent.name %}{{ agent.name }}
{% endif %}""" + _SIGNED_RU.rstrip("\n") + """{% endif %}

"""
    + _SIGNATURE
    + """\
Обращение № {{ ticket.id }}. Если захотите что-то добавить, ответьте
на это письмо, не удаляя из темы [#{{ ticket.id }}].
""",
    "test_letter": """\
Subject: Проверка почты канала {{ channel.name }} [{{ token }}]

Здравствуйте!

Это тестовое письмо: eddymail отправил его, чтобы проверить, работает ли
исходящая почта этого ящика.

  Служба: {{ helpdesk.name }}
  Канал: {{ channel.name }}
  Адрес: {{ channel.email }}
  Отдел: {{ department.name }}
  Код проверки: {{ token }}

Если вы видите это письмо, значит, канал умеет отправлять почту. Больше
ничего делать не нужно — письмо можно удалить.
""",
}

_TEXTS = {"en": {**_EN, **staff.TEXTS["en"]}, "ru": {**_RU, **staff.TEXTS["ru"]}}

_SAMPLES: dict[str, dict[str, object]] = {
    "en": {
        "user.name": "Anna Petrova",
        "user.email": "anna.petrova@example.com",
        "ticket.id": 1042,
        "ticket.subject": "March invoice has not arrived",
        "department.name": "Accounts",
        "helpdesk.name": "Acme Corp",
        "reply.body": (
            "Thank you for the details. I have sent the March invoice to your address again;\n"
            "it should arrive within a few minutes.\n"
            "\n"
            "If it does not, please let me know and I will look into it straight away."
        ),
        "agent.name": "Sam Carter",
        "agent.signature": "",
        "token": "eddymail-test-7f3c9a2e41b8d605",
        "channel.name": "support",
        "channel.email": "support@example.com",
    },
    "ru": {
        "user.name": "Анна Петрова",
        "user.email": "anna.petrova@example.com",
        "ticket.id": 1042,
        "ticket.subject": "Не пришёл счёт за март",
        "department.name": "Бухгалтерия",
        "helpdesk.name": "ООО «Ромашка»",
        "reply.body": (
            "Спасибо за подробности. Я повторно отправила счёт за март на ваш адрес,\n"
            "он должен прийти в течение нескольких минут.\n"
            "\n"
            "Если письма не будет, напишите, пожалуйста, — я сразу разберусь."
        ),
        "agent.name": "Мария Иванова",
        "agent.signature": "",
        "token": "eddymail-test-7f3c9a2e41b8d605",
        "channel.name": "support",
        "channel.email": "support@example.com",
    },
}
