"""Check and render notification templates.

A template is one piece of text, so it can be edited in ``$EDITOR`` as a whole::

    Subject: [#{{ ticket.id }}] Request received: {{ ticket.subject }}
    <blank line>
    Hello {{ user.name }},
    ...

The first line is the subject, after ``Subject:``; a blank line separates it from the body,
as in a mail message. Lines before the subject may hold blank lines and ``{# ... #}``
comments (a place for notes to colleagues). Both parts are Jinja templates, compiled
separately so that nothing a value contains can move text from the body into the subject.

Line numbers in error messages count from the top of the whole text, comments included.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from jinja2 import Template, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError

from eddymail.errors import ValidationError
from eddymail.templates import checks, sandbox
from eddymail.templates.defaults import TemplateSpec, spec

#: Longest template text accepted for saving or rendering.
MAX_SOURCE_CHARS = 50_000
#: Longest rendered subject; longer ones are cut with an ellipsis (the [#123] tag goes first).
MAX_SUBJECT_CHARS = 250

_SUBJECT_LINE = re.compile(r"subject:(.*)", re.IGNORECASE)
# Control characters, plus the Unicode line and paragraph separators some mail clients honour.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROLS_KEEPING_TAB_AND_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# One environment for every template: it holds no per-render state (budgets live in a
# context variable), and Jinja environments are safe to share between threads.
_environment = sandbox.HardenedEnvironment()


@dataclass(frozen=True)
class RenderedTemplate:
    """A rendered notification: a one-line subject and a plain-text body ending in a newline."""

    subject: str
    body: str


@dataclass(frozen=True)
class _Part:
    """The subject or the body of a template source, and where it starts in the source."""

    text: str
    first_line: int

    def line(self, jinja_line: int | None) -> int | None:
        """Turn a line number inside this part into one inside the whole source."""
        return None if jinja_line is None else self.first_line + jinja_line - 1


@dataclass(frozen=True)
class _Compiled:
    subject: Template
    body: Template
    subject_part: _Part
    body_part: _Part


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
    values = _select_values(spec(name), context)
    with sandbox.render_budget():
        subject = _render_part(name, compiled.subject, compiled.subject_part, values, "subject")
        body = _render_part(name, compiled.body, compiled.body_part, values, "body")
    return RenderedTemplate(subject=_clean_subject(subject), body=_clean_body(body))


# --- the source layout ---------------------------------------------------------------------


def _split_source(name: str, source: str) -> tuple[_Part, _Part]:
    """Split a source into its subject and body parts, or say what is wrong with its layout."""
    if len(source) > MAX_SOURCE_CHARS:
        raise _invalid(name, f"the text is longer than {MAX_SOURCE_CHARS} characters")
    # Editors on Windows add a BOM and CR LF line ends; neither should change the meaning.
    lines = source.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    index = _skip_preamble(name, lines)
    if index == len(lines):
        raise _invalid(name, "the text is empty; write 'Subject: ...', a blank line, then the body")
    match = _SUBJECT_LINE.fullmatch(lines[index].strip())
    if match is None:
        raise _invalid(
            name,
            f"line {index + 1}: the first line must be 'Subject: ...', "
            "followed by a blank line and the body",
        )
    subject = match.group(1).strip()
    if not subject:
        raise _invalid(name, f"line {index + 1}: the subject is empty")
    if index + 1 >= len(lines) or not "".join(lines[index + 2 :]).strip():
        raise _invalid(name, f"line {index + 1}: the body is missing; put it after a blank line")
    if lines[index + 1].strip():
        raise _invalid(
            name,
            f"line {index + 2}: expected a blank line between the Subject line and the body "
            "(the subject is a single line)",
        )
    return (
        _Part(subject, first_line=index + 1),
        _Part("\n".join(lines[index + 2 :]), first_line=index + 3),
    )


def _skip_preamble(name: str, lines: list[str]) -> int:
    """Index of the first line after leading blank lines and ``{# ... #}`` comments."""
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        if not stripped:
            index += 1
            continue
        if not stripped.startswith("{#"):
            return index
        start = index
        while "#}" not in lines[index]:
            index += 1
            if index == len(lines):
                raise _invalid(name, f"line {start + 1}: the comment '{{#' is never closed")
        if lines[index].split("#}", 1)[1].strip():
            return start  # text after the comment: let the Subject check explain
        index += 1
    return index


# --- compiling and the static checks -------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _compile(name: str, source: str) -> _Compiled:
    # Cached: fetch renders the same stored text for every new ticket. Failures are not
    # cached (lru_cache does not keep exceptions), so a fixed template is seen at once.
    template_spec = spec(name)
    subject_part, body_part = _split_source(name, source)
    subject_tree = _parse(name, subject_part)
    body_tree = _parse(name, body_part)
    problems = [
        *checks.find_problems(template_spec, subject_tree, _environment, subject_part.first_line),
        *checks.find_problems(template_spec, body_tree, _environment, body_part.first_line),
        *checks.missing_required(template_spec, (subject_tree, body_tree), _environment),
    ]
    if problems:
        raise _invalid(name, checks.describe(template_spec, problems))
    return _Compiled(
        subject=_build(name, subject_part, subject_tree),
        body=_build(name, body_part, body_tree),
        subject_part=subject_part,
        body_part=body_part,
    )


def _parse(name: str, part: _Part) -> nodes.Template:
    try:
        return _environment.parse(part.text)
    except TemplateSyntaxError as error:
        raise _invalid(name, f"line {part.line(error.lineno)}: {error.message}") from None


def _build(name: str, part: _Part, tree: nodes.Template) -> Template:
    try:
        return _environment.from_string(sandbox.harden(tree, _environment))
    except TemplateSyntaxError as error:  # e.g. a filter that does not exist
        raise _invalid(name, f"line {part.line(error.lineno)}: {error.message}") from None


# --- rendering -----------------------------------------------------------------------------


_MISSING = object()


def _select_values(template_spec: TemplateSpec, context: Mapping[str, object]) -> dict:
    """Copy only the declared variables out of ``context``, as plain cleaned values."""
    selected: dict[str, object] = {}
    for variable in template_spec.variables:
        value: object = context
        for key in variable.name.split("."):
            value = _lookup(value, key)
            if value is _MISSING:
                break
        if value is _MISSING:
            continue  # StrictUndefined reports it if the template uses it
        *parents, leaf = variable.name.split(".")
        level = selected
        for parent in parents:
            level = level.setdefault(parent, {})  # type: ignore[assignment]
        level[leaf] = _plain(value, multiline=variable.multiline)
    return selected


def _lookup(container: object, key: str) -> object:
    if isinstance(container, Mapping):
        return container.get(key, _MISSING)
    return getattr(container, key, _MISSING)


def _plain(value: object, *, multiline: bool) -> object:
    """A value safe to hand to a template: a number, a boolean or a cleaned string."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    text = value if isinstance(value, str) else str(value)
    # Names and subjects come from mail headers and are hostile: a line break in them could
    # only be an attempt to forge lines of the message, so they become one line.
    return _multiline_text(text) if multiline else _one_line(text)


def _one_line(text: str) -> str:
    return " ".join(_CONTROLS.sub(" ", text).split())


def _multiline_text(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n")
    return _CONTROLS_KEEPING_TAB_AND_NEWLINE.sub("", text)


def _render_part(name: str, template: Template, part: _Part, values: dict, label: str) -> str:
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


def _render_error(name: str, part: _Part, error: Exception) -> ValidationError:
    if isinstance(error, SecurityError):
        detail = f"{error} Templates can only use their variables and plain values."
    elif isinstance(error, UndefinedError | sandbox.RenderLimitError):
        detail = str(error)
    elif isinstance(error, RecursionError):
        detail = "a macro calls itself too deeply"
    else:
        detail = f"{type(error).__name__}: {error}"
    line = part.line(_template_line(error))
    return _invalid(
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


def _clean_subject(text: str) -> str:
    subject = _one_line(text)
    if len(subject) > MAX_SUBJECT_CHARS:
        subject = subject[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
    return subject


def _clean_body(text: str) -> str:
    return _multiline_text(text).lstrip("\n").rstrip() + "\n"


def _invalid(name: str, detail: str, *, hint: str | None = None) -> ValidationError:
    return ValidationError(f"template {name!r}, {detail}", hint=hint)
