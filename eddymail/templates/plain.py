"""Rendering simple templates without Jinja: text, values, and if/else on values.

The shipped notifications and most edited ones use nothing but ``{{ ticket.id }}``,
``{{ ticket.subject or "(no subject)" }}`` and ``{% if user.name %}...{% else %}...{% endif %}``
(a condition may also compare two values with ``==`` or ``!=``, or be ``not value``).
Importing Jinja and compiling a template costs more than the rest of a mail server's
``eddymail ingest`` run (issue 14), so such a template is rendered here, by Jinja's rules for
these few constructs. ``render`` returns None for anything else (filters, loops, macros,
whitespace control, comments, numbers, a name the template does not offer, a value that
makes the text too long), and the caller hands the template to Jinja
(``eddymail.templates.engine``), which renders it or says what is wrong. tests/
test_plain_templates.py holds the two to the same output.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from eddymail.templates import layout
from eddymail.templates.defaults import spec

# Where Jinja's lexer sees a tag or a comment begin: the first "{{", "{%" or "{#" of the text
# ("{{%" opens an expression). A tag ends at the first closing mark after it: a string that
# holds one ("}}" or "%}") makes the tag unreadable here, and Jinja takes over.
_OPENER = re.compile(r"\{[{%#]")
_CLOSERS = {"{{": "}}", "{%": "%}"}
# One token of a tag: a comparison, a string without escapes, or a (dotted) name. Keywords
# ("if", "or", "not") are names here; only declared variables are accepted as values, so a
# constant (true, none), a global (range) or a private name goes to Jinja.
_TOKEN = re.compile(r"""\s*(?:(==|!=)|("[^"\\]*"|'[^'\\]*')|(\w+(?:\.\w+)*))""")


class _Unsupported(Exception):
    """Something this renderer does not read: the template goes to Jinja."""


@dataclass(frozen=True)
class _Value:
    """A variable by its dotted name, or a string literal."""

    name: str | None = None
    literal: str | None = None


# An expression: values joined by "or"; a condition: an expression, "not" a value, or two
# values compared.
@dataclass(frozen=True)
class _Expression:
    values: tuple[_Value, ...]


@dataclass(frozen=True)
class _Condition:
    left: _Expression
    operator: str | None = None  # "==", "!=", "not" or None
    right: _Value | None = None


@dataclass
class _Branch:
    condition: _Condition | None  # None: the else branch
    body: list[object]


@dataclass
class _If:
    branches: list[_Branch]


def render(name: str, source: str, context: Mapping[str, object]) -> layout.RenderedTemplate | None:
    """Template ``name`` rendered from ``source`` without Jinja, or None if it needs Jinja.

    Raises the same ``ValidationError`` as Jinja's path for a text whose layout (the
    ``Subject:`` line, the blank line) is wrong, and ``NotFoundError`` for an unknown name.
    """
    parsed = _parsed(name, source)
    if parsed is None:
        return None
    subject_nodes, body_nodes = parsed
    values = layout.select_values(spec(name), context)
    try:
        subject = _render(subject_nodes, values)
        body = _render(body_nodes, values)
    except _Unsupported:
        return None
    if len(subject) > layout.MAX_TEXT_CHARS or len(body) > layout.MAX_TEXT_CHARS:
        return None  # Jinja's path reports which part is too long
    return layout.RenderedTemplate(subject=layout.clean_subject(subject),
                                   body=layout.clean_body(body))


# --- reading ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _parsed(name: str, source: str) -> tuple[list[object], list[object]] | None:
    """The subject's and the body's nodes, or None when the template needs Jinja.

    Cached, like Jinja's compiled templates: fetch renders the same text for every new
    ticket. Layout errors are raised (and, as exceptions, not cached).
    """
    template_spec = spec(name)
    subject_part, body_part = layout.split_source(name, source)
    declared = set(template_spec.variable_names)
    try:
        subject_nodes, subject_names = _parse(subject_part.text, declared)
        body_nodes, body_names = _parse(body_part.text, declared)
    except _Unsupported:
        return None
    used = subject_names | body_names
    if any(variable.required and variable.name not in used
           for variable in template_spec.variables):
        return None  # Jinja's checks explain what is missing
    return subject_nodes, body_nodes


def _parse(text: str, declared: set[str]) -> tuple[list[object], set[str]]:
    """The nodes of one part and the variables it uses; ``_Unsupported`` if it needs Jinja."""
    # Jinja drops one newline at the very end of a template (keep_trailing_newline=False).
    if text.endswith("\n"):
        text = text[:-1]
    used: set[str] = set()
    root: list[object] = []
    stack: list[_If] = []
    body = root
    position = 0
    while (opener := _OPENER.search(text, position)) is not None:
        _add_text(body, text[position:opener.start()])
        closer = _CLOSERS.get(opener.group())
        end = text.find(closer, opener.end()) if closer is not None else -1
        if closer is None or end < 0:  # a comment, or a tag that is never closed
            raise _Unsupported
        tokens = _tokens(text[opener.end():end])
        position = end + len(closer)
        if opener.group() == "{{":
            body.append(_expression(tokens, declared, used))
        else:
            body = _statement(tokens, declared, used, stack, root)
        if tokens:
            raise _Unsupported
    _add_text(body, text[position:])
    if stack:
        raise _Unsupported
    return root, used


def _statement(tokens: list[tuple[str, str]], declared: set[str], used: set[str],
               stack: list[_If], root: list[object]) -> list[object]:
    """Read an if/elif/else/endif tag; return the node list that text goes to next."""
    keyword = tokens.pop(0) if tokens else None
    open_branch = stack[-1].branches[-1] if stack else None
    if keyword == ("name", "if"):
        branch = _Branch(_condition(tokens, declared, used), [])
        block = _If([branch])
        (open_branch.body if open_branch else root).append(block)
        stack.append(block)
        return branch.body
    if keyword in (("name", "elif"), ("name", "else")) and open_branch and open_branch.condition:
        condition = _condition(tokens, declared, used) if keyword[1] == "elif" else None
        branch = _Branch(condition, [])
        stack[-1].branches.append(branch)
        return branch.body
    if keyword == ("name", "endif") and stack:
        stack.pop()
        return stack[-1].branches[-1].body if stack else root
    raise _Unsupported


def _add_text(body: list[object], text: str) -> None:
    if text:
        body.append(text)


def _tokens(text: str) -> list[tuple[str, str]]:
    """("operator" | "string" | "name", text) for every token; ``_Unsupported`` otherwise."""
    tokens = []
    position = 0
    while text[position:].strip():
        match = _TOKEN.match(text, position)
        if match is None:
            raise _Unsupported
        operator, string, name = match.groups()
        if operator:
            tokens.append(("operator", operator))
        elif string:
            tokens.append(("string", string[1:-1]))
        else:
            tokens.append(("name", name))
        position = match.end()
    return tokens


def _value(tokens: list[tuple[str, str]], declared: set[str], used: set[str]) -> _Value:
    if not tokens:
        raise _Unsupported
    kind, text = tokens.pop(0)
    if kind == "string":
        return _Value(literal=text)
    if kind != "name" or text not in declared:
        # A keyword out of place, a constant, a global, a private or unknown name, or a
        # part of a variable (printing ``user`` would print a mapping): Jinja's to judge.
        raise _Unsupported
    used.add(text)
    return _Value(name=text)


def _expression(tokens: list[tuple[str, str]], declared: set[str],
                used: set[str]) -> _Expression:
    values = [_value(tokens, declared, used)]
    while tokens and tokens[0] == ("name", "or"):
        tokens.pop(0)
        values.append(_value(tokens, declared, used))
    return _Expression(tuple(values))


def _condition(tokens: list[tuple[str, str]], declared: set[str], used: set[str]) -> _Condition:
    if tokens and tokens[0] == ("name", "not"):
        tokens.pop(0)
        return _Condition(_Expression((_value(tokens, declared, used),)), "not")
    left = _expression(tokens, declared, used)
    if tokens and tokens[0][0] == "operator" and len(left.values) == 1:
        operator = tokens.pop(0)[1]
        return _Condition(left, operator, _value(tokens, declared, used))
    return _Condition(left)


# --- rendering --------------------------------------------------------------------------------


def _render(nodes: list[object], values: dict) -> str:
    pieces: list[str] = []
    _write(nodes, values, pieces)
    return "".join(pieces)


def _write(nodes: list[object], values: dict, pieces: list[str]) -> None:
    for node in nodes:
        if isinstance(node, str):
            pieces.append(node)
        elif isinstance(node, _Expression):
            value = _evaluate(node, values)
            pieces.append(value if isinstance(value, str) else str(value))
        else:
            assert isinstance(node, _If)
            for branch in node.branches:
                if branch.condition is None or _holds(branch.condition, values):
                    _write(branch.body, values, pieces)
                    break


def _holds(condition: _Condition, values: dict) -> bool:
    left = _evaluate(condition.left, values)
    if condition.operator == "not":
        return not left
    if condition.operator is None:
        return bool(left)
    assert condition.right is not None
    right = _lookup(condition.right, values)
    return left == right if condition.operator == "==" else left != right


def _evaluate(expression: _Expression, values: dict) -> object:
    result: object = None
    for value in expression.values:
        result = _lookup(value, values)
        if result:
            return result
    return result


def _lookup(value: _Value, values: dict) -> object:
    if value.literal is not None:
        return value.literal
    assert value.name is not None
    level: object = values
    for key in value.name.split("."):
        # Jinja reads ``user.items`` as the mapping's method before its "items" key; and a
        # value the caller did not give is an error Jinja words (StrictUndefined).
        if not isinstance(level, dict) or key not in level or (
                level is not values and hasattr(dict, key)):
            raise _Unsupported
        level = level[key]
    return level
