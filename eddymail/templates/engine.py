"""Check and render notification templates with Jinja (in its hardened sandbox).

The layout of a template's text (subject line, blank line, body), the values it is given and
the cleaning of its result are in ``eddymail.templates.layout``, shared with the renderer of
simple templates (``eddymail.templates.plain``), which ``eddymail.templates.render`` tries
first. Both parts are Jinja templates, compiled separately so that nothing a value contains
can move text from the body into the subject.

Line numbers in error messages count from the top of the whole text, comments included.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from jinja2 import Template, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError

from eddymail.errors import ValidationError
from eddymail.templates import checks, sandbox
from eddymail.templates.defaults import spec
from eddymail.templates.layout import (
    Part,
    RenderedTemplate,
    clean_body,
    clean_subject,
    invalid,
    select_values,
    split_source,
)

# One environment for every template: it holds no per-render state (budgets live in a
# context variable), and Jinja environments are safe to share between threads.
_environment = sandbox.HardenedEnvironment()


@dataclass(frozen=True)
class _Compiled:
    subject: Template
    body: Template
    subject_part: Part
    body_part: Part


def validate(name: str, source: str) -> None:
    """Check ``source`` as the text of template ``name``; return quietly when it is usable.

    Raises ``ValidationError`` saying where the problem is: the layout (no ``Subject:`` line,
    no blank line before the body), Jinja syntax, variables the template does not offer,
    private attributes, loading other files. ``NotFoundError`` for an unknown ``name``.
    """
    _compile(name, source)


def render(name: str, source: str, context: Mapping[str, object]) -> RenderedTemplate:
    """Render template ``name`` from ``source`` with values from ``context``.

    ``context`` is shaped like the variables: ``{"ticket": {"id": 7, "subject": "..."}}``;
    nested values may be mappings or objects with attributes. Only the variables the template
    declares are taken from it, flattened to plain strings and numbers, so nothing else the
    caller holds (a message body, a database row) can reach the template.

    The source is validated first (the same ``ValidationError`` as ``validate``); errors while
    rendering, including going over a time or size limit, are ``ValidationError`` too.
    """
    compiled = _compile(name, source)
    values = select_values(spec(name), context)
    with sandbox.render_budget():
        subject = _render_part(name, compiled.subject, compiled.subject_part, values, "subject")
        body = _render_part(name, compiled.body, compiled.body_part, values, "body")
    return RenderedTemplate(subject=clean_subject(subject), body=clean_body(body))


# --- compiling and the static checks -------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _compile(name: str, source: str) -> _Compiled:
    # Cached: fetch renders the same stored text for every new ticket. Failures are not
    # cached (lru_cache does not keep exceptions), so a fixed template is seen at once.
    template_spec = spec(name)
    subject_part, body_part = split_source(name, source)
    subject_tree = _parse(name, subject_part)
    body_tree = _parse(name, body_part)
    problems = [
        *checks.find_problems(template_spec, subject_tree, _environment, subject_part.first_line),
        *checks.find_problems(template_spec, body_tree, _environment, body_part.first_line),
        *checks.missing_required(template_spec, (subject_tree, body_tree), _environment),
    ]
    if problems:
        raise invalid(name, checks.describe(template_spec, problems))
    return _Compiled(
        subject=_build(name, subject_part, subject_tree),
        body=_build(name, body_part, body_tree),
        subject_part=subject_part,
        body_part=body_part,
    )


def _parse(name: str, part: Part) -> nodes.Template:
    try:
        return _environment.parse(part.text)
    except TemplateSyntaxError as error:
        raise invalid(name, f"line {part.line(error.lineno)}: {error.message}") from None


def _build(name: str, part: Part, tree: nodes.Template) -> Template:
    try:
        return _environment.from_string(sandbox.harden(tree, _environment))
    except TemplateSyntaxError as error:  # e.g. a filter that does not exist
        raise invalid(name, f"line {part.line(error.lineno)}: {error.message}") from None


# --- rendering -----------------------------------------------------------------------------


def _render_part(name: str, template: Template, part: Part, values: dict, label: str) -> str:
    pieces: list[str] = []
    size = 0
    try:
        for piece in template.generate(values):
            size += len(piece)
            if size > sandbox.MAX_TEXT_CHARS:
                raise sandbox.RenderLimitError(
                    f"the rendered {label} is longer than {sandbox.MAX_TEXT_CHARS} characters"
                )
            pieces.append(piece)
    except Exception as error:  # any failure of a staff-written template is theirs to fix
        raise _render_error(name, part, error) from error
    return "".join(pieces)


def _render_error(name: str, part: Part, error: Exception) -> ValidationError:
    if isinstance(error, SecurityError):
        detail = f"{error} Templates can only use their variables and plain values."
    elif isinstance(error, UndefinedError | sandbox.RenderLimitError):
        detail = str(error)
    elif isinstance(error, RecursionError):
        detail = "a macro calls itself too deeply"
    else:
        detail = f"{type(error).__name__}: {error}"
    line = part.line(_template_line(error))
    return invalid(
        name,
        f"line {line}: {detail}" if line else detail,
        hint=f"Fix it with `eddymail template edit {name}`, or go back to the shipped text "
        f"with `eddymail template reset {name}`.",
    )


def _template_line(error: BaseException) -> int | None:
    """The template line an error happened on, from the frames Jinja rewrites for templates."""
    line = None
    trace = error.__traceback__
    while trace is not None:
        if trace.tb_frame.f_code.co_filename == "<template>":
            line = trace.tb_lineno
        trace = trace.tb_next
    return line
