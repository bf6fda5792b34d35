"""The notifications eddymail sends to agents: their variables and shipped texts.

Unlike the customer templates, these go to the team's own addresses, so they may quote what
a customer wrote: the subject and a plain-text excerpt (``message.excerpt``, made plain and
cut short before it gets here). Nothing the customer sent as HTML or as a file is included;
files are only named. Russian texts put names in the nominative only (after a label or in
parentheses), so they read right for any department or person.
"""

from __future__ import annotations

from eddymail.templates.specs import (
    DEPARTMENT,
    HELPDESK,
    TICKET_ID,
    TICKET_SUBJECT,
    TemplateSpec,
    TemplateVariable,
)

_AGENT = TemplateVariable("agent.name", "Name of the agent this mail goes to")
_AGENT_HANDLE = TemplateVariable("agent.handle", "Handle of the agent this mail goes to")
_TICKET_STATUS = TemplateVariable("ticket.status", "open, pending or closed")
_CUSTOMER_NAME = TemplateVariable("customer.name", "The requester's name (may be empty)")
_CUSTOMER_EMAIL = TemplateVariable("customer.email", "The requester's address")
_FROM = TemplateVariable("message.from", "Address the customer's message came from")
_FROM_NAME = TemplateVariable(
    "message.from_name", "Name its sender gave (a participant's, not always the requester's)")
_EXCERPT = TemplateVariable(
    "message.excerpt", "The start of the customer's text, quotes left out, as plain text",
    multiline=True)
_FILES = TemplateVariable("message.attachments", "Attached files' names and sizes, or empty")
_WARNING = TemplateVariable("message.warning", "A warning such as a failed sender check")
_ASSIGNEE = TemplateVariable("assignee.name", "The agent the ticket is assigned to, or empty")

_ABOUT_A_MESSAGE = (_AGENT, _AGENT_HANDLE, TICKET_ID, TICKET_SUBJECT, _TICKET_STATUS,
                    _CUSTOMER_NAME, _CUSTOMER_EMAIL, _FROM, _FROM_NAME, _EXCERPT, _FILES, _WARNING,
                    _ASSIGNEE, DEPARTMENT, HELPDESK)

SPECS: tuple[TemplateSpec, ...] = (
    TemplateSpec("staff_new_ticket", "Tells a department's agents that a new ticket arrived",
                 _ABOUT_A_MESSAGE, automatic=True, audience="staff"),
    TemplateSpec("staff_customer_reply",
                 "Tells the assignee (or the department's agents) that the customer wrote",
                 _ABOUT_A_MESSAGE, automatic=True, audience="staff"),
    TemplateSpec("staff_assigned", "Tells an agent that someone assigned a ticket to them",
                 (*_ABOUT_A_MESSAGE,
                  TemplateVariable("assigned_by.name", "The agent who assigned it")),
                 automatic=True, audience="staff"),
    TemplateSpec("staff_digest", "Sums up an agent's waiting notifications (digest delivery)",
                 (_AGENT, _AGENT_HANDLE,
                  TemplateVariable("digest.count", "How many notifications it sums up"),
                  TemplateVariable("digest.new_tickets", "How many of them are new tickets"),
                  TemplateVariable("digest.replies", "How many are customers' replies"),
                  TemplateVariable("digest.assigned", "How many are assignments to the agent"),
                  TemplateVariable("digest.text", "One entry per ticket: number, kind, "
                                   "subject, sender, first line", multiline=True),
                  HELPDESK),
                 automatic=True, audience="staff"),
)

_SEPARATOR = "--\x20\n"  # RFC 3676 signature separator, spelt so editors keep the space

_MESSAGE_EN = """\
  Ticket: #{{ ticket.id }} ({{ department.name }})
  Subject: {{ ticket.subject or "(no subject)" }}
  From: {% if message.from_name %}{{ message.from_name }} <{{ message.from }}>\
{% elif message.from %}{{ message.from }}{% elif customer.name %}{{ customer.name }} \
<{{ customer.email }}>{% else %}{{ customer.email }}{% endif %}
{% if assignee.name %}  Assigned to: {{ assignee.name }}
{% endif %}{% if message.attachments %}  Files: {{ message.attachments }}
{% endif %}{% if message.warning %}
  {{ message.warning }}
{% endif %}
{{ message.excerpt }}

  eddymail ticket show {{ ticket.id }}
  eddymail ticket reply {{ ticket.id }}
"""

_MESSAGE_RU = """\
  Обращение: № {{ ticket.id }} ({{ department.name }})
  Тема: {{ ticket.subject or "(без темы)" }}
  От: {% if message.from_name %}{{ message.from_name }} <{{ message.from }}>\
{% elif message.from %}{{ message.from }}{% elif customer.name %}{{ customer.name }} \
<{{ customer.email }}>{% else %}{{ customer.email }}{% endif %}
{% if assignee.name %}  Исполнитель: {{ assignee.name }}
{% endif %}{% if message.attachments %}  Файлы: {{ message.attachments }}
{% endif %}{% if message.warning %}
  {{ message.warning }}
{% endif %}
{{ message.excerpt }}

  eddymail ticket show {{ ticket.id }}
  eddymail ticket reply {{ ticket.id }}
"""

_FOOTER_EN = _SEPARATOR + """\
Sent by eddymail to {{ agent.handle }}; do not reply to this mail. Your notification
settings: eddymail agent show {{ agent.handle }}
"""

_FOOTER_RU = _SEPARATOR + """\
Письмо отправлено eddymail для {{ agent.handle }}; отвечать на него не нужно.
Настройки уведомлений: eddymail agent show {{ agent.handle }}
"""

# A reply to a notification about one ticket becomes the agent's internal note on it
# (services/ingest/staffanswers.py); a digest covers several tickets, so not there.
_ANSWER_EN = _SEPARATOR + """\
Sent by eddymail to {{ agent.handle }}. A reply to this mail becomes your internal
note on ticket #{{ ticket.id }}; the customer never sees it. Your notification
settings: eddymail agent show {{ agent.handle }}
"""

_ANSWER_RU = _SEPARATOR + """\
Письмо отправлено eddymail для {{ agent.handle }}. Ответ на него станет вашей
внутренней заметкой к обращению № {{ ticket.id }}; клиент её не увидит.
Настройки уведомлений: eddymail agent show {{ agent.handle }}
"""

_GREETING_EN = "{% if agent.name %}Hello {{ agent.name }},{% else %}Hello,{% endif %}\n\n"
_GREETING_RU = "{% if agent.name %}Здравствуйте, {{ agent.name }}!{% else %}Здравствуйте!\
{% endif %}\n\n"

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "staff_new_ticket": (
            'Subject: [#{{ ticket.id }}] New ticket ({{ department.name }}): '
            '{{ ticket.subject or "(no subject)" }}\n\n' + _GREETING_EN
            + "A new ticket has arrived:\n\n" + _MESSAGE_EN + "\n" + _ANSWER_EN),
        "staff_customer_reply": (
            'Subject: [#{{ ticket.id }}] Customer replied: '
            '{{ ticket.subject or "(no subject)" }}\n\n' + _GREETING_EN
            + "The customer has written again:\n\n" + _MESSAGE_EN + "\n" + _ANSWER_EN),
        "staff_assigned": (
            'Subject: [#{{ ticket.id }}] Assigned to you: '
            '{{ ticket.subject or "(no subject)" }}\n\n' + _GREETING_EN
            + "{{ assigned_by.name or 'A colleague' }} has assigned this ticket to you:\n\n"
            + _MESSAGE_EN + "\n" + _ANSWER_EN),
        "staff_digest": (
            "Subject: Helpdesk digest: {{ digest.new_tickets }} new, "
            "{{ digest.replies }} replied, {{ digest.assigned }} assigned\n\n" + _GREETING_EN
            + "Since your last digest:\n\n"
            "  New tickets: {{ digest.new_tickets }}\n"
            "  Customer replies: {{ digest.replies }}\n"
            "  Assigned to you: {{ digest.assigned }}\n\n"
            "{{ digest.text }}\n\n"
            "  eddymail ticket show NUMBER\n\n" + _FOOTER_EN),
    },
    "ru": {
        "staff_new_ticket": (
            'Subject: [#{{ ticket.id }}] Новое обращение ({{ department.name }}): '
            '{{ ticket.subject or "(без темы)" }}\n\n' + _GREETING_RU
            + "Поступило новое обращение:\n\n" + _MESSAGE_RU + "\n" + _ANSWER_RU),
        "staff_customer_reply": (
            'Subject: [#{{ ticket.id }}] Ответ клиента: '
            '{{ ticket.subject or "(без темы)" }}\n\n' + _GREETING_RU
            + "Клиент написал по обращению:\n\n" + _MESSAGE_RU + "\n" + _ANSWER_RU),
        "staff_assigned": (
            'Subject: [#{{ ticket.id }}] Вам назначено обращение: '
            '{{ ticket.subject or "(без темы)" }}\n\n' + _GREETING_RU
            + "Вам назначено обращение.{% if assigned_by.name %} "
            "Назначил(а): {{ assigned_by.name }}.{% endif %}\n\n"
            + _MESSAGE_RU + "\n" + _ANSWER_RU),
        "staff_digest": (
            "Subject: Сводка службы поддержки: новых — {{ digest.new_tickets }}, "
            "ответов — {{ digest.replies }}, назначено — {{ digest.assigned }}\n\n"
            + _GREETING_RU + "С прошлой сводки:\n\n"
            "  Новые обращения: {{ digest.new_tickets }}\n"
            "  Ответы клиентов: {{ digest.replies }}\n"
            "  Назначено вам: {{ digest.assigned }}\n\n"
            "{{ digest.text }}\n\n"
            "  eddymail ticket show НОМЕР\n\n" + _FOOTER_RU),
    },
}

_EXCERPT_EN = ("Hello, the invoice for March has still not arrived.\n"
               "Could you send it again, please? Our order number is 2041.")
_EXCERPT_RU = ("Здравствуйте! Счёт за март так и не пришёл.\n"
               "Пришлите его, пожалуйста, ещё раз. Номер заказа — 2041.")

SAMPLES: dict[str, dict[str, object]] = {
    "en": {
        "agent.handle": "sam", "ticket.status": "open", "customer.name": "Anna Petrova",
        "customer.email": "anna.petrova@example.com", "message.from": "anna.petrova@example.com",
        "message.from_name": "Anna Petrova", "message.excerpt": _EXCERPT_EN,
        "message.attachments": "order-2041.pdf (84 KB)",
        "message.warning": "", "assignee.name": "", "assigned_by.name": "Maria Ivanova",
        "digest.count": 2, "digest.new_tickets": 1, "digest.replies": 1, "digest.assigned": 0,
        "digest.text": "#1042  new ticket  Printer prints empty pages\n"
                       "       anna.petrova@example.com (Support): Hello, since this morning…\n"
                       "#1039  customer reply  Invoice for March\n"
                       "       boris@example.org (Accounts): Thank you, it has arrived.",
    },
    "ru": {
        "agent.handle": "maria", "ticket.status": "open", "customer.name": "Анна Петрова",
        "customer.email": "anna.petrova@example.com", "message.from": "anna.petrova@example.com",
        "message.from_name": "Анна Петрова", "message.excerpt": _EXCERPT_RU,
        "message.attachments": "order-2041.pdf (84 KB)",
        "message.warning": "", "assignee.name": "", "assigned_by.name": "Сэм Картер",
        "digest.count": 2, "digest.new_tickets": 1, "digest.replies": 1, "digest.assigned": 0,
        "digest.text": "№ 1042  новое обращение  Принтер печатает пустые листы\n"
                       "        anna.petrova@example.com (Поддержка): Здравствуйте! С утра…\n"
                       "№ 1039  ответ клиента  Счёт за март\n"
                       "        boris@example.org (Бухгалтерия): Спасибо, пришёл.",
    },
}
