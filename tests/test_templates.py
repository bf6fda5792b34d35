"""Notification templates: shipped texts, checks with line numbers, sandbox and limits."""

from __future__ import annotations

import dataclasses
import re

import pytest
from jinja2.exceptions import SecurityError

from eddymail.errors import NotFoundError, ValidationError
from eddymail.templates import (
    LANGUAGES,
    MAX_SUBJECT_CHARS,
    MAX_TEXT_CHARS,
    TEMPLATE_NAMES,
    default_source,
    render,
    sample_context,
    sandbox,
    spec,
    validate,
)
from eddymail.templates.sandbox import HardenedEnvironment
from tests.workcount import FakeClock, work_budget

# Steps a runaway template may take before a limit stops it (the worst case takes ~12 M).
RUNAWAY_STEP_BUDGET = 40_000_000
ALL_DEFAULTS = [(name, language) for name in TEMPLATE_NAMES for language in LANGUAGES]


def reply_source(*body_lines: str) -> str:
    """A `reply` template whose body starts on line 3 with the given lines."""
    return "Subject: Re: [#{{ ticket.id }}]\n\n" + "\n".join(body_lines) + "\n"


def reply_context(**ticket: object) -> dict:
    context = sample_context("reply", "en")
    context["ticket"] = {**context["ticket"], **ticket}  # type: ignore[dict-item]
    return context


def rejects(source: str, name: str = "reply") -> str:
    """Render ``source`` expecting a ValidationError; return its message."""
    context = sample_context(name, "en")
    with pytest.raises(ValidationError) as caught:
        render(name, source, context)
    return str(caught.value)


# --- catalogue ---------------------------------------------------------------------------


CUSTOMER_TEMPLATES = ("registration", "ticket_created", "reply", "test_letter")
STAFF_TEMPLATES = ("staff_new_ticket", "staff_customer_reply", "staff_assigned", "staff_digest")


def test_catalogue_names_languages_and_automatic_flags():
    assert TEMPLATE_NAMES == CUSTOMER_TEMPLATES + STAFF_TEMPLATES
    assert LANGUAGES == ("en", "ru")
    automatic = {name: spec(name).automatic for name in TEMPLATE_NAMES}
    assert automatic == {
        "registration": True,
        "ticket_created": True,
        "reply": False,
        "test_letter": True,
        **dict.fromkeys(STAFF_TEMPLATES, True),
    }
    assert {name: spec(name).audience for name in TEMPLATE_NAMES} == {
        **dict.fromkeys(CUSTOMER_TEMPLATES, "customer"), **dict.fromkeys(STAFF_TEMPLATES, "staff")}
    assert "ticket.id" in spec("registration").variable_names
    assert "department.name" in spec("registration").variable_names
    assert {"token", "channel.name", "channel.email"} <= set(spec("test_letter").variable_names)
    assert {"reply.body", "agent.name", "department.name"} <= set(spec("reply").variable_names)


def test_unknown_template_and_language_are_not_found():
    with pytest.raises(NotFoundError, match="registration, ticket_created"):
        spec("password_reset")
    with pytest.raises(NotFoundError, match="available: en, ru"):
        default_source("reply", "de")
    # Locale spellings from a config file or $LANG still find the text.
    assert default_source("reply", "ru_RU") == default_source("reply", "RU")


def test_no_variable_exposes_the_customers_message():
    # Mail to customers must never quote inbound mail: the only body text is the agent's own.
    # (Staff templates may: they go to the team's own agents.)
    for name in CUSTOMER_TEMPLATES:
        names = spec(name).variable_names
        bodies = [variable for variable in names if "body" in variable or "message" in variable]
        assert bodies == (["reply.body"] if name == "reply" else [])


@pytest.mark.parametrize("department", ["Support", "Поддержка", "Sales & Returns", "IT"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_texts_read_naturally_for_any_department_name(department, language):
    """No "Welcome to Support support", no "Support / Support" sign-off, and in Russian no
    name standing where the grammar would decline it: names follow a label, stand in
    parentheses or alone on a line (a signature), never inside a sentence."""
    for name in TEMPLATE_NAMES:
        context = sample_context(name, language)
        for key in ("department", "helpdesk"):
            if key in context:
                context[key] = {"name": department}
        rendered = render(name, default_source(name, language), context)
        text = rendered.subject + "\n" + rendered.body
        assert f"{department} support".lower() not in text.lower(), (name, text)
        assert f"{department}\n{department}" not in text, (name, text)
        if language == "ru":
            for line in text.splitlines():
                if department in line and line.strip() != department:
                    assert ":" in line or f"({department}" in line, (name, line)


def test_sample_context_has_exactly_the_declared_variables():
    for name, language in ALL_DEFAULTS:
        context = sample_context(name, language)
        flat = {
            f"{root}.{key}" if isinstance(branch, dict) else root
            for root, branch in context.items()
            for key in (branch if isinstance(branch, dict) else [root])
        }
        assert flat == set(spec(name).variable_names), (name, language)


# --- shipped texts -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "language"), ALL_DEFAULTS)
def test_default_validates_and_renders_with_samples(name, language):
    source = default_source(name, language)
    validate(name, source)
    context = sample_context(name, language)
    rendered = render(name, source, context)

    assert rendered.subject and "\n" not in rendered.subject and "\r" not in rendered.subject
    assert rendered.body.endswith("\n") and not rendered.body.endswith("\n\n")
    assert "{{" not in rendered.body and "{%" not in rendered.body
    if "ticket.id" in spec(name).variable_names:
        assert "[#1042]" in rendered.subject
        assert "1042" in rendered.body
    if name == "test_letter":
        token = context["token"]
        assert token in rendered.subject and token in rendered.body
        assert "support@example.com" in rendered.body
    if name == "reply":
        agent_text = context["reply"]["body"]  # type: ignore[index]
        assert agent_text in rendered.body
        assert context["agent"]["name"] in rendered.body  # type: ignore[index]
    greeting = "Здравствуйте" if language == "ru" else "Hello"
    assert rendered.body.startswith(greeting)
    has_cyrillic = re.search("[а-яё]", rendered.body) is not None
    assert has_cyrillic == (language == "ru")


@pytest.mark.parametrize("language", LANGUAGES)
def test_greeting_without_a_name_has_no_dangling_comma(language):
    context = sample_context("reply", language)
    context["user"]["name"] = ""  # type: ignore[index]
    body = render("reply", default_source("reply", language), context).body
    assert body.splitlines()[0] == ("Здравствуйте!" if language == "ru" else "Hello,")


def test_reply_footer_is_a_real_signature_block():
    # "-- " with its space lets mail clients hide the footer from quotes.
    body = render("reply", default_source("reply", "en"), sample_context("reply", "en")).body
    assert "\n-- \n" in body


# --- the source layout -------------------------------------------------------------------


def test_comments_before_the_subject_are_allowed_and_counted_in_line_numbers():
    source = "{# Notes for colleagues:\n   keep it short #}\n\nSubject: Hi\n\n{{ ticket.nope }}\n"
    with pytest.raises(ValidationError, match=r"line 6: unknown variable 'ticket\.nope'"):
        validate("reply", source)


def test_windows_line_ends_and_bom_are_accepted():
    source = "\ufeffSubject: Re: [#{{ ticket.id }}]\r\n\r\nHello\r\n{{ reply.body }}\r\n"
    rendered = render("reply", source, sample_context("reply", "en"))
    assert rendered.subject == "Re: [#1042]"
    assert "\r" not in rendered.body and rendered.body.startswith("Hello\nThank you")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("Hello {{ user.name }}\n", r"line 1: the first line must be 'Subject: \.\.\.'"),
        ("", r"the text is empty"),
        ("Subject:\n\nBody\n", r"line 1: the subject is empty"),
        ("Subject: Hi\nBody right away\nmore\n", r"line 2: expected a blank line"),
        ("Subject: Hi\n\n   \n", r"line 1: the body is missing"),
        ("{# never closed\nSubject: Hi\n\nBody\n", r"line 1: the comment '\{#' is never closed"),
    ],
)
def test_layout_mistakes_say_where(source, expected):
    with pytest.raises(ValidationError, match=expected):
        validate("reply", source)


def test_source_size_is_capped():
    with pytest.raises(ValidationError, match="longer than"):
        validate("reply", reply_source("x" * 60_000))


# --- static checks -----------------------------------------------------------------------


def test_syntax_error_reports_its_line():
    source = reply_source("Hello", "{{ ticket.id }")  # body line 2 = source line 4
    with pytest.raises(ValidationError, match=r"line 4: unexpected '\}'"):
        validate("reply", source)


def test_syntax_error_in_the_subject_reports_line_one():
    with pytest.raises(ValidationError, match=r"line 1: .*endif"):
        validate("reply", "Subject: {% if ticket.id %}x\n\nBody\n")


def test_unknown_variable_reports_line_and_the_available_names():
    source = reply_source("a", "b", "c", "d", "{{ ticket.secret }}")  # source line 7
    with pytest.raises(ValidationError) as caught:
        validate("reply", source)
    message = str(caught.value)
    assert "line 7: unknown variable 'ticket.secret'" in message
    assert "available: user.name, user.email, ticket.id, ticket.subject" in message


def test_misspelt_variable_gets_a_suggestion_and_every_mistake_is_listed():
    source = "Subject: {{ tiket.id }}\n\n{{ reply.bdy }}\n{{ foo|nosuchfilter }}\n"
    with pytest.raises(ValidationError) as caught:
        validate("reply", source)
    message = str(caught.value)
    assert "line 1: unknown variable 'tiket' (did you mean 'ticket.id'?)" in message
    assert "line 3: unknown variable 'reply.bdy' (did you mean 'reply.body'?)" in message
    assert "line 4: unknown filter 'nosuchfilter'" in message


def test_names_the_template_defines_itself_are_not_unknown():
    source = reply_source(
        "{% set greeting = 'Hi' %}{{ greeting }}",
        "{% for word in ticket.subject.split() %}{{ loop.index }}:{{ word }} {% endfor %}",
        "{% macro sign(who) %}-- {{ who|upper }}{% endmacro %}{{ sign(agent.name) }}",
        "{{ ticket['subject']|truncate(10) }} {{ ticket.subject.upper() }}",
    )
    validate("reply", source)
    body = render("reply", source, sample_context("reply", "en")).body
    assert body.splitlines() == [
        "Hi",
        "1:March 2:invoice 3:has 4:not 5:arrived ",
        "-- SAM CARTER",
        "March... MARCH INVOICE HAS NOT ARRIVED",
    ]


def test_test_letter_must_keep_its_token():
    source = "Subject: Test of {{ channel.name }}\n\nHello from {{ channel.email }}\n"
    with pytest.raises(ValidationError, match=r"must use \{\{ token \}\}"):
        validate("test_letter", source)


def test_validate_unknown_template_is_not_found():
    with pytest.raises(NotFoundError):
        validate("nope", "Subject: x\n\nbody\n")


# --- the sandbox -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ ticket.__class__ }}",
        "{{ ticket.subject.__class__.__base__.__subclasses__() }}",
        "{{ self.__dict__ }}",
        "{{ ''|attr('__class__') }}",
        "{{ ticket.subject|map(attribute='__class__')|list }}",
        # Names built at run time get past the static checks and meet the sandbox instead.
        "{{ ''['__cl' ~ 'ass__'] }}",
        "{{ ticket.subject|attr('__cl' ~ 'ass__') }}",
        "{{ '{0.__class__.__init__.__globals__}'.format(ticket.subject) }}",
        "{{ [].append(1) }}",
        "{{ lipsum() }}",
        "{{ namespace(a=1) }}",
    ],
)
def test_sandbox_escapes_are_refused(expression):
    message = rejects(reply_source(expression))
    assert "line 3" in message
    assert re.search("private|unsafe|unknown variable|not safely callable", message), message


@pytest.mark.parametrize(
    ("statement", "tag"),
    [
        ("{% include '/etc/passwd' %}", "include"),
        ("{% import 'macros.txt' as m %}", "import"),
        ("{% from 'macros.txt' import sign %}", "from ... import"),
        ("{% extends 'base.txt' %}", "extends"),
    ],
)
def test_loading_other_files_is_refused(statement, tag):
    message = rejects(reply_source("Hello", statement))
    assert f"line 4: {{% {tag} %}} is not allowed" in message


def test_the_environment_itself_refuses_internals_without_the_static_checks():
    # Defence in depth: even a template that skipped validation cannot reach internals.
    environment = HardenedEnvironment()
    with pytest.raises(SecurityError):
        environment.from_string("{{ ''.__class__.__mro__ }}").render()
    with pytest.raises(SecurityError):
        environment.from_string("{{ x.__init__.__globals__ }}").render(x=object())
    assert environment.loader is None
    assert set(environment.globals) == {"range"}


def test_context_is_reduced_to_declared_plain_values():
    @dataclasses.dataclass
    class Ticket:
        id: int
        subject: str
        body: str  # the customer's inbound text: must never reach a template

    context = reply_context()
    context["ticket"] = Ticket(7, "Printer", "SECRET inbound text")
    context["message"] = {"body": "SECRET inbound text"}
    source = reply_source("{{ ticket }}", "{{ reply.body }}")
    body = render("reply", source, context).body
    assert body.splitlines()[0] == "{'id': 7, 'subject': 'Printer'}"
    assert "SECRET" not in body
    message = rejects(reply_source("{{ ticket.body }}"))
    assert "unknown variable 'ticket.body'" in message


def test_a_missing_value_is_an_error_with_its_line():
    context = sample_context("reply", "en")
    del context["agent"]
    with pytest.raises(ValidationError, match=r"line 4: 'agent' is undefined"):
        render("reply", reply_source("Hi", "{{ agent.name }}"), context)


def test_runtime_error_reports_its_line_and_how_to_fix_it():
    with pytest.raises(ValidationError) as caught:
        render("reply", reply_source("a", "b", "{{ 1 / 0 }}"), sample_context("reply", "en"))
    assert "line 5: ZeroDivisionError" in str(caught.value)
    assert caught.value.hint and "eddymail template reset reply" in caught.value.hint


# --- limits ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{% for i in range(10**9) %}x{% endfor %}", "range"),
        ("{% for i in range(9999) %}{% for j in range(9999) %}{% endfor %}{% endfor %}", "work"),
        (
            "{% for a in ticket.subject * 1000 %}{% for b in ticket.subject * 1000 %}"
            "{% endfor %}{% endfor %}",
            "work",
        ),
        (
            "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}"
            "{{ m(40) }}",
            "work",
        ),
        ("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "too deeply"),
        ("{{ 'x' * 10**9 }}", "length 1000000000"),
        ("{{ 10 ** 10 ** 10 }}", "too large"),
        ("{{ 'x'|center(10**9) }}", "center"),
        ("{{ 'x'.ljust(10**9) }}", "ljust"),
        ("{{ '%999999999s' % 'x' }}", "width"),
        ("{{ '{:>999999999}'.format('x') }}", "width"),
        ("{{ range(9999)|join('x' * 100000) }}", "join"),
        ("{{ ticket.subject|replace('', 'x' * 100000) }}", "replace"),
        ("{% for i in range(9999) %}{{ reply.body }}{% endfor %}", "longer than"),
        (
            # Text captured by {% set %} never reaches the output, but is counted all the same.
            "{% set big %}{% for i in range(9999) %}{{ reply.body }}{% endfor %}{% endset %}"
            "{{ big|length }}",
            "writes more than",
        ),
        (
            # Each ~ multiplies the length by eight, without a loop or a call.
            "{% set a = reply.body ~ reply.body ~ reply.body ~ reply.body %}{% set a = a ~ a %}"
            "{% set b = a ~ a ~ a ~ a ~ a ~ a ~ a ~ a %}{% set c = b ~ b ~ b ~ b ~ b ~ b ~ b ~ b %}"
            "{% set d = c ~ c ~ c ~ c ~ c ~ c ~ c ~ c %}{{ d|length }}",
            "joined text",
        ),
    ],
)
def test_runaway_templates_are_stopped_quickly(body, expected, monkeypatch):
    # "Quickly" is counted in steps (lines run, calls made), not seconds: a limit that
    # stopped working runs into the budget at once instead of for minutes. The
    # render's own time limit is frozen, so the limit named in ``expected`` is the one that
    # must stop the template, however slow the machine is today.
    monkeypatch.setattr(sandbox, "time", FakeClock())
    with work_budget(RUNAWAY_STEP_BUDGET):
        message = rejects(reply_source(body))
    assert expected in message
    assert "line 3" in message or "longer than" in message


def test_a_render_that_outlives_its_time_limit_is_stopped(monkeypatch):
    # A clock that moves one second at every reading: a few loop steps are "seconds" of work,
    # far fewer than the step limit allows, so only the time limit can stop this loop.
    monkeypatch.setattr(sandbox, "time", FakeClock(tick=1.0))
    message = rejects(reply_source("{% for i in range(50) %}{{ i }}{% endfor %}"))
    assert f"took longer than {sandbox.MAX_SECONDS:g} seconds" in message


def test_output_cap_applies_to_the_final_text():
    context = reply_context()
    context["reply"] = {"body": "y" * (MAX_TEXT_CHARS + 1)}
    with pytest.raises(ValidationError, match=f"body is longer than {MAX_TEXT_CHARS}"):
        render("reply", default_source("reply", "en"), context)


def test_small_loops_still_work():
    body = render(
        "reply", reply_source("{% for i in range(3) %}{{ i }}{% endfor %}"), reply_context()
    ).body
    assert body == "012\n"


# --- hostile values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "Help\r\nBcc: victim@example.com",
        "Help\nBcc: victim@example.com",
        "Help\rBcc: victim@example.com",
        "Help\u2028Bcc: victim@example.com",
        "Help\x85Bcc: victim@example.com",
    ],
)
def test_header_injection_in_the_subject_stays_on_one_line(subject):
    # The reply frame: automatic notifications offer no subject at all (issue 11, class 4).
    context = sample_context("reply", "en")
    context["ticket"]["subject"] = subject  # type: ignore[index]
    rendered = render("reply", default_source("reply", "en"), context)
    assert rendered.subject == "Re: [#1042] Help Bcc: victim@example.com"


def test_line_breaks_written_by_the_template_into_the_subject_are_flattened():
    source = 'Subject: a{{ "\\r\\n" }}Bcc: x@y{{ "\\n\\n" }}body?\n\nBody {{ ticket.id }}\n'
    rendered = render("reply", source, reply_context())
    assert rendered.subject == "a Bcc: x@y body?"


def test_hostile_names_cannot_add_lines_or_terminal_escapes_to_the_body():
    context = sample_context("reply", "en")
    context["user"]["name"] = "Eve\r\n\r\nYour account is closed,\x1b[2J"  # type: ignore[index]
    body = render("reply", default_source("reply", "en"), context).body
    assert body.splitlines()[0] == "Hello Eve Your account is closed, [2J,"
    assert "\x1b" not in body


def test_agent_reply_keeps_its_line_breaks_normalised():
    context = reply_context()
    context["reply"] = {"body": "First line\r\nSecond line\r\n\r\nNew paragraph"}
    body = render("reply", reply_source("{{ reply.body }}"), context).body
    assert body == "First line\nSecond line\n\nNew paragraph\n"


def test_long_subject_is_cut_but_keeps_the_ticket_tag():
    context = sample_context("reply", "ru")
    context["ticket"]["subject"] = "очень длинная тема " * 50  # type: ignore[index]
    subject = render("reply", default_source("reply", "ru"), context).subject
    assert len(subject) == MAX_SUBJECT_CHARS
    assert subject.startswith("Re: [#1042] ") and subject.endswith("…")


def test_none_values_render_as_empty_text():
    context = sample_context("reply", "en")
    context["ticket"]["subject"] = None  # type: ignore[index]
    rendered = render("reply", default_source("reply", "en"), context)
    assert rendered.subject == "Re: [#1042] (no subject)"
