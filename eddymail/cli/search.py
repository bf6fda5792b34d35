"""``eddymail search``: the full-text index behind ``ticket list --search``."""

from __future__ import annotations

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.services.tickets import search


@click.group("search")
def search_group() -> None:
    """The search index of ticket messages (subject, people, body).

    New mail, replies and notes are indexed as they are stored; `search rebuild` indexes
    every message again, e.g. after restoring a database from an older backup.

    \b
    Examples:
      eddymail ticket list --search "принтер"
      eddymail search rebuild
    """


@search_group.command("rebuild")
@json_option
@with_database
def rebuild() -> None:
    """Empty the search index and index every ticket message again.

    Runs in batches, so fetch and other commands keep working meanwhile; mail that
    arrives during the rebuild is indexed by its own fetch.

    \b
    Examples:
      eddymail search rebuild
      eddymail search rebuild --json
    """
    out = state().output
    with out.progress("Indexing messages") as update:
        result = search.rebuild(lambda done, total: update("Indexing messages", done, total))
    out.emit({"search": result},
             lambda: out.success(f"Search index rebuilt: {result.messages} message(s)."))
