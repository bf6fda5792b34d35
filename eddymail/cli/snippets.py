"""``eddymail snippet``: canned replies, inserted into replies by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from eddymail.cli.app import agent_option, json_option, state, with_database
from eddymail.cli.texts import given_text
from eddymail.services import snippets

HELP_LINE = "# Write the canned reply above this line; everything below it is ignored."


@click.group("snippet")
def snippet_group() -> None:
    """Canned replies: texts agents insert into a reply by name.

    \b
    Examples:
      eddymail snippet add refund-done -m "Your refund is on its way: 3-5 business days."
      eddymail ticket reply 42 --snippet refund-done --close
      (or a line "/snippet refund-done" in the reply's $EDITOR draft)
    """


def _text(message: str | None, file: str | None, current: str = "") -> str:
    """From -m, -F (``-`` for stdin), piped stdin, or else $EDITOR."""
    text = given_text(message, file)
    if text is not None:
        return text
    edited = click.edit(f"{current}\n{HELP_LINE}\n", extension=".txt") or ""
    return edited.split(HELP_LINE, 1)[0]


TEXT_OPTIONS = (
    click.option("-m", "--message", help="The text (otherwise $EDITOR opens)."),
    click.option("-F", "--file", "file", help="Read the text from a file ('-': stdin)."),
)


def _with_text_options(function: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(TEXT_OPTIONS):
        function = option(function)
    return function


@snippet_group.command("add")
@click.argument("name")
@_with_text_options
@agent_option
@json_option
@with_database
def add(name: str, message: str | None, file: str | None) -> None:
    """Store a canned reply under NAME.

    \b
    Examples:
      eddymail snippet add greeting -m "Thank you for writing to us."
      eddymail snippet add refund-done -F refund.txt
    """
    handle = state().actor().handle or ""
    info = snippets.add_snippet(name, _text(message, file), created_by=handle)
    out = state().output
    out.emit({"snippet": info}, lambda: out.success(f"Snippet {info.name} added."))


@snippet_group.command("edit")
@click.argument("name")
@click.option("--rename", "new_name", metavar="NEW", help="Give the snippet a new name.")
@_with_text_options
@json_option
@with_database
def edit(name: str, new_name: str | None, message: str | None, file: str | None) -> None:
    """Change a canned reply's text (in $EDITOR unless -m or -F) or its name.

    \b
    Examples:
      eddymail snippet edit greeting
      eddymail snippet edit greeting --rename hello
    """
    current = snippets.show_snippet(name)
    body = None
    if message is not None or file is not None or new_name is None:
        body = _text(message, file, current.body)
    info = snippets.edit_snippet(name, body, new_name=new_name)
    out = state().output
    out.emit({"snippet": info}, lambda: out.success(f"Snippet {info.name} saved."))


@snippet_group.command("list")
@json_option
@with_database
def list_() -> None:
    """List the canned replies with the start of each.

    \b
    Example:
      eddymail snippet list
    """
    items = snippets.list_snippets()
    out = state().output
    out.emit({"snippets": items}, lambda: out.table(
        ["Name", "Text", "Updated"],
        [[s.name, " ".join(s.body.split()), s.updated_at] for s in items],
        empty="No snippets yet: eddymail snippet add NAME.", grow={"Text": 1}))


@snippet_group.command("show")
@click.argument("name")
@json_option
@with_database
def show(name: str) -> None:
    """Show one canned reply in full.

    \b
    Example:
      eddymail snippet show greeting
    """
    info = snippets.show_snippet(name)
    out = state().output

    def render() -> None:
        out.fields([("Snippet", info.name), ("Added by", info.created_by or "-"),
                    ("Updated", info.updated_at)])
        out.line("")
        out.text(info.body.rstrip())

    out.emit({"snippet": info}, render)


@snippet_group.command("remove")
@click.argument("name")
@json_option
@with_database
def remove(name: str) -> None:
    """Delete a canned reply (replies already sent keep their text).

    \b
    Example:
      eddymail snippet remove greeting
    """
    removed = snippets.remove_snippet(name)
    out = state().output
    out.emit({"removed": removed}, lambda: out.success(f"Snippet {removed} removed."))
