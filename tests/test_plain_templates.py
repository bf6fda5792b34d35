"""The renderer of simple templates (no Jinja) gives exactly Jinja's result, or declines.

``eddymail.templates.plain`` renders templates made of text, values, ``or`` and if/else
without importing Jinja (issue 14: start-up of a mail server's ``ingest``). Here every
shipped template and a few thousand generated ones go through both renderers: where the
plain one answers, Jinja must give the same subject and body; where Jinja refuses or fails,
the plain one must have declined.
"""

from __future__ import annotations

import random

import pytest

from eddymail.errors import ValidationError
from eddymail.templates import (
    LANGUAGES,
    TEMPLATE_NAMES,
    default_source,
    engine,
    plain,
    render,
    sample_context,
    spec,
)
from eddymail.templates.layout import MAX_TEXT_CHARS

# Values of every shape a context may carry, hostile ones included.
VALUES: tuple[object, ...] = (
    "", "Anna Petrova", "  spaced  out  ", "line\nbreak\r\nand\u2028more", "\x1b[31mred\x07",
    "{{ user.name }}", "{% if x %}", "}}", "%}", "Ünïcödé ‮RTL", "0", 0, 7, 1042, -1, 1.5,
    True, False, None, "(no subject)",
)


def contexts(name: str, language: str, rng: random.Random, count: int,
             missing: float = 0.0) -> list[dict]:
    """The sample context, and ``count`` random ones (a value is left out with probability
    ``missing``)."""
    found = [sample_context(name, language)]
    for _ in range(count):
        context: dict = {}
        for variable in spec(name).variables:
            if rng.random() < missing:
                continue
            *parents, leaf = variable.name.split(".")
            level = context
            for parent in parents:
                level = level.setdefault(parent, {})
            level[leaf] = rng.choice(VALUES)
        found.append(context)
    return found


def outcome(renderer, name: str, source: str, context: dict):
    """What a renderer made of it: a rendered template, None (declined) or the error."""
    try:
        return renderer(name, source, context)
    except ValidationError as error:
        return ("error", error.message)


def assert_same_or_declined(name: str, source: str, context: dict) -> bool:
    """Check one case; True when the plain renderer answered."""
    simple = outcome(plain.render, name, source, context)
    jinja = outcome(engine.render, name, source, context)
    if isinstance(simple, tuple):  # a layout error: both say the same
        assert simple == jinja, source
        return False
    if simple is None:
        return False
    assert simple == jinja, (source, context)
    return True


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_shipped_templates_render_as_with_jinja(name, language):
    rng = random.Random(f"{name}-{language}")
    source = default_source(name, language)
    complete = [assert_same_or_declined(name, source, context)
                for context in contexts(name, language, rng, 30)]
    for context in contexts(name, language, rng, 30, missing=0.1):
        assert_same_or_declined(name, source, context)
    # With every value given, a template in the simple subset is always answered.
    assert all(complete) or not any(complete)


@pytest.mark.parametrize("name", ["registration", "ticket_created", "reply"])
def test_the_per_message_notifications_need_no_jinja(name):
    # What ingest and fetch send for every new ticket must not load Jinja (issue 14).
    for language in LANGUAGES:
        source = default_source(name, language)
        assert plain.render(name, source, sample_context(name, language)) is not None


# --- generated templates -------------------------------------------------------------------


TEXTS = ("Hello ", "\n", "\n\n", " ", "}", "%", "{ x }", "a } b", "Привет, ", "x\ty", "#",
         "  Subject: ", "--\x20\n", "{", "\n  ", "%}", "}}", "#}")
# Things the plain renderer must leave to Jinja (or that Jinja refuses).
FOREIGN = ("{{ user.name | upper }}", "{%- if user.name %}x{% endif %}", "{# note #}",
           "{{ 1 }}", "{{ user }}", "{{ user.items }}", "{{ user.name.upper() }}",
           "{% for x in range(2) %}x{% endfor %}", "{{ nobody }}", "{{ _secret }}",
           "{{ user['name'] }}", "{% if user.name %}unclosed", "{% endif %}", "{{ true }}",
           "{{ user.name ~ 'x' }}", "{% if user.name is defined %}y{% endif %}",
           "{% else %}", "{{ 'a}}b' }}", "{{ \"esc\\\"aped\" }}", "{{ user.name -}}",
           "{{ user.name and ticket.id }}", "{% set x = 1 %}", "{{", "{{% if user.name %}")


def _value(rng: random.Random, names: list[str]) -> str:
    if rng.random() < 0.2:
        quote = rng.choice("'\"")
        return quote + rng.choice(("", "(no subject)", "x y", "}")) + quote
    return rng.choice(names)


def _expression(rng: random.Random, names: list[str]) -> str:
    values = [_value(rng, names) for _ in range(rng.choice((1, 1, 2, 3)))]
    return " or ".join(values)


def _condition(rng: random.Random, names: list[str]) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return "not " + _value(rng, names)
    if kind == 1:
        return f"{_value(rng, names)} {rng.choice(('==', '!='))} {_value(rng, names)}"
    return _expression(rng, names)


def _fragment(rng: random.Random, names: list[str], depth: int = 0) -> str:
    pieces = []
    for _ in range(rng.randrange(1, 6)):
        roll = rng.random()
        if roll < 0.35:
            pieces.append(rng.choice(TEXTS))
        elif roll < 0.7:
            spacing = rng.choice((" ", "", "  ", "\n"))
            pieces.append(f"{{{{{spacing}{_expression(rng, names)}{spacing}}}}}")
        elif roll < 0.93 and depth < 2:
            branches = [f"{{% if {_condition(rng, names)} %}}{_fragment(rng, names, depth + 1)}"]
            for _ in range(rng.randrange(2)):
                branches.append(f"{{% elif {_condition(rng, names)} %}}"
                                f"{_fragment(rng, names, depth + 1)}")
            if rng.random() < 0.5:
                branches.append(f"{{% else %}}{_fragment(rng, names, depth + 1)}")
            pieces.append("".join(branches) + "{% endif %}")
        elif roll < 0.96:
            pieces.append(rng.choice(FOREIGN))
    return "".join(pieces)


@pytest.mark.parametrize("name", ["registration", "reply", "test_letter"])
def test_generated_templates_render_as_with_jinja(name):
    rng = random.Random(f"generated-{name}")
    names = list(spec(name).variable_names)
    answered = declined = 0
    for _ in range(400):
        subject = _fragment(rng, names).replace("\n", " ") or "x"
        body = _fragment(rng, names) + rng.choice(("", "\n", "\n\n"))
        source = f"Subject: {subject}\n\n{body}\nend"
        context = contexts(name, "en", rng, 1, missing=0.05)[rng.randrange(2)]
        if assert_same_or_declined(name, source, context):
            answered += 1
        else:
            declined += 1
    # Both sides of the comparison were exercised.
    assert answered > 40 and declined > 40


def test_declines_what_it_does_not_read():
    context = sample_context("registration", "en")
    for foreign in FOREIGN:
        source = f"Subject: Hi\n\nHello {foreign} there\n"
        assert plain.render("registration", source, context) is None, foreign


def test_a_text_over_the_limit_goes_to_jinja_for_its_error():
    context = sample_context("reply", "en")
    context["reply"] = {"body": "y" * (MAX_TEXT_CHARS + 1)}
    source = default_source("reply", "en")
    assert plain.render("reply", source, context) is None
    with pytest.raises(ValidationError, match=f"body is longer than {MAX_TEXT_CHARS}"):
        render("reply", source, context)


def test_render_answers_simple_templates_without_loading_jinja():
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from eddymail.templates import render, default_source, sample_context\n"
        "for name in ('registration', 'ticket_created'):\n"
        "    render(name, default_source(name, 'ru'), sample_context(name, 'ru'))\n"
        "print('jinja2' in sys.modules)\n"
        "render('registration', 'Subject: x\\n\\n{{ helpdesk.name|upper }}',\n"
        "       {'helpdesk': {'name': 'a'}})\n"
        "print('jinja2' in sys.modules)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=120, check=False)
    assert completed.stdout.split() == ["False", "True"], completed.stderr
