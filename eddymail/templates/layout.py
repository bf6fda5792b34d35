"""A template's text and a rendering's result, without Jinja: the layout, values, limits.

A template is one piece of text, so it can be edited in ``$EDITOR`` as a whole::

    Subject: [#{{ ticket.id }}] Request received: {{ ticket.subject }}
    <blank line>
    Hello {{ user.name }},
    ...

The first line is the subject, after ``Subject:``; a blank line separates it from the body,
as in a mail message. Lines before the subject may hold blank lines and ``{# ... #}``
comments (a place for notes to colleagues). Both parts are rendered separately, so that
nothing a value contains can move text from the body into the subject.

Both renderers use what is here: Jinja (``engine``) and the one for simple templates
(``plain``), so the two split a text, pick and clean its values and clean its result alike.
Line numbers in error messages count from the top of the whole text, comments included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from eddymail.errors import ValidationError
from eddymail.templates.defaults import TemplateSpec

#: Longest template text accepted for saving or rendering.
MAX_SOURCE_CHARS = 50_000
#: Longest rendered subject; longer ones are cut with an ellipsis (the [#123] tag goes first).
MAX_SUBJECT_CHARS = 250
#: Longest single value (string, list) a template may build, and the longest rendered body.
MAX_TEXT_CHARS = 200_000

_SUBJECT_LINE = re.compile(r"subject:(.*)", re.IGNORECASE)
# Control characters, plus the Unicode line and paragraph separators some mail clients honour.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROLS_KEEPING_TAB_AND_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class RenderedTemplate:
    """A rendered notification: a one-line subject and a plain-text body ending in a newline."""

    subject: str
    body: str


@dataclass(frozen=True)
class Part:
    """The subject or the body of a template source, and where it starts in the source."""

    text: str
    first_line: int

    def line(self, part_line: int | None) -> int | None:
        """Turn a line number inside this part into one inside the whole source."""
        return None if part_line is None else self.first_line + part_line - 1


def split_source(name: str, source: str) -> tuple[Part, Part]:
    """Split a source into its subject and body parts, or say what is wrong with its layout."""
    if len(source) > MAX_SOURCE_CHARS:
        raise invalid(name, f"the text is longer than {MAX_SOURCE_CHARS} characters")
    # Editors on Windows add a BOM and CR LF line ends; neither should change the meaning.
    lines = source.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    index = _skip_preamble(name, lines)
    if index == len(lines):
        raise invalid(name, "the text is empty; write 'Subject: ...', a blank line, then the body")
    match = _SUBJECT_LINE.fullmatch(lines[index].strip())
    if match is None:
        raise invalid(
            name,
            f"line {index + 1}: the first line must be 'Subject: ...', "
            "followed by a blank line and the body",
        )
    subject = match.group(1).strip()
    if not subject:
        raise invalid(name, f"line {index + 1}: the subject is empty")
    if index + 1 >= len(lines) or not "".join(lines[index + 2 :]).strip():
        raise invalid(name, f"line {index + 1}: the body is missing; put it after a blank line")
    if lines[index + 1].strip():
        raise invalid(
            name,
            f"line {index + 2}: expected a blank line between the Subject line and the body "
            "(the subject is a single line)",
        )
    return (
        Part(subject, first_line=index + 1),
        Part("\n".join(lines[index + 2 :]), first_line=index + 3),
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
                raise invalid(name, f"line {start + 1}: the comment '{{#' is never closed")
        if lines[index].split("#}", 1)[1].strip():
            return start  # text after the comment: let the Subject check explain
        index += 1
    return index


# --- values -------------------------------------------------------------------------------


_MISSING = object()


def select_values(template_spec: TemplateSpec, context: Mapping[str, object]) -> dict:
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


# --- the result ---------------------------------------------------------------------------


def clean_subject(text: str) -> str:
    """A rendered subject as one line, cut to ``MAX_SUBJECT_CHARS``."""
    subject = _one_line(text)
    if len(subject) > MAX_SUBJECT_CHARS:
        subject = subject[: MAX_SUBJECT_CHARS - 1].rstrip() + "…"
    return subject


def clean_body(text: str) -> str:
    """A rendered body without controls, blank lines at its ends trimmed, one final newline."""
    return _multiline_text(text).lstrip("\n").rstrip() + "\n"


def invalid(name: str, detail: str, *, hint: str | None = None) -> ValidationError:
    """The error for a template that cannot be used, naming it."""
    return ValidationError(f"template {name!r}, {detail}", hint=hint)
