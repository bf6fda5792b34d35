"""Canned replies ("snippets"): texts an agent inserts by name into a reply.

A snippet is used as ``ticket reply N --snippet NAME``, or written into a reply as a line of
its own, ``/snippet NAME``, which becomes the snippet's text (in an $EDITOR draft, a -m text
or a -F file alike). The text goes into the reply as it is, inside the usual reply frame
(greeting, signature); it is staff's own wording, never a customer's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from eddymail.db.connection import database_proxy
from eddymail.db.models import Snippet, utcnow
from eddymail.errors import ConflictError, NotFoundError, ValidationError
from eddymail.services import naming

NAME = re.compile(r"^[\w][\w.-]{0,63}$")
MAX_BODY = 20_000
# A line of its own: "/snippet NAME" (spaces around allowed).
INSERT_LINE = re.compile(r"^[ \t]*/snippet[ \t]+(\S+)[ \t]*$", re.MULTILINE)


@dataclass(frozen=True)
class SnippetInfo:
    """A canned reply as ``snippet list/show`` report it."""

    name: str
    body: str
    created_by: str
    created_at: datetime
    updated_at: datetime


def add_snippet(name: str, body: str, *, created_by: str = "") -> SnippetInfo:
    """Store a new snippet. Raises ``ConflictError`` when the name is taken."""
    name = _valid_name(name)
    body = _valid_body(body)
    with database_proxy.atomic():
        if _find(name) is not None:
            raise ConflictError(f"A snippet '{name}' exists already: eddymail snippet edit {name}.")
        snippet = Snippet.create(name=name, body=body, created_by=created_by,
                                 created_at=utcnow(), updated_at=utcnow())
    return _describe(snippet)


def edit_snippet(name: str, body: str | None = None, *, new_name: str | None = None
                 ) -> SnippetInfo:
    """Change a snippet's text or name."""
    with database_proxy.atomic():
        snippet = find_snippet(name)
        if new_name is not None and new_name.casefold() != snippet.name.casefold():
            new_name = _valid_name(new_name)
            if _find(new_name) is not None:
                raise ConflictError(f"A snippet '{new_name}' exists already.")
            snippet.name = new_name
        if body is not None:
            snippet.body = _valid_body(body)
        snippet.updated_at = utcnow()
        snippet.save()
    return _describe(snippet)


def remove_snippet(name: str) -> str:
    """Delete a snippet; its name."""
    snippet = find_snippet(name)
    snippet.delete_instance()
    return snippet.name


def list_snippets() -> list[SnippetInfo]:
    """Every snippet, by name."""
    return [_describe(snippet) for snippet in Snippet.select().order_by(Snippet.name)]


def show_snippet(name: str) -> SnippetInfo:
    """One snippet. Raises ``NotFoundError``."""
    return _describe(find_snippet(name))


def find_snippet(name: str) -> Snippet:
    """The snippet with this name (any case). Raises ``NotFoundError``."""
    snippet = _find(name)
    if snippet is None:
        known = ", ".join(s.name for s in Snippet.select(Snippet.name).order_by(Snippet.name))
        raise NotFoundError(f"No snippet '{naming.printable(name)}' (snippets: "
                            f"{known or 'none yet'}): see eddymail snippet list.")
    return snippet


def compose(text: str, names: tuple[str, ...] | list[str] = ()) -> str:
    """A reply's text: ``/snippet NAME`` lines replaced, then the named snippets appended.

    Raises ``NotFoundError`` (naming the snippet) before anything is sent.
    """
    expanded = INSERT_LINE.sub(lambda match: find_snippet(match.group(1)).body.rstrip("\n"), text)
    parts = [expanded.strip("\n")] if expanded.strip() else []
    parts += [find_snippet(name).body.strip("\n") for name in names]
    return "\n\n".join(parts)


def names() -> list[str]:
    """The snippet names, for the reply draft's reminder."""
    return [snippet.name for snippet in Snippet.select(Snippet.name).order_by(Snippet.name)]


def _find(name: str) -> Snippet | None:
    wanted = name.strip().casefold()
    for snippet in Snippet.select():
        if snippet.name.casefold() == wanted:
            return snippet
    return None


def _valid_name(name: str) -> str:
    name = name.strip()
    if not NAME.match(name):
        raise ValidationError(f"'{naming.printable(name)}' cannot be a snippet name: letters, "
                              "digits, '.', '-' and '_', up to 64, starting with a letter "
                              "or digit.")
    return name


def _valid_body(body: str) -> str:
    body = body.strip("\n")
    if not body.strip():
        raise ValidationError("The snippet is empty.")
    if len(body) > MAX_BODY:
        raise ValidationError(f"The snippet is over {MAX_BODY} characters.")
    if INSERT_LINE.search(body):
        raise ValidationError("A snippet cannot insert another snippet (/snippet lines).")
    return body + "\n"


def _describe(snippet: Snippet) -> SnippetInfo:
    return SnippetInfo(snippet.name, snippet.body, snippet.created_by, snippet.created_at,
                       snippet.updated_at)
