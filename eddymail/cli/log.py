"""``eddymail log``: the error log, what mail servers answered."""

from __future__ import annotations

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.services import errorlog


@click.command("log")
@click.option("--channel", help="Only this channel's entries.")
@click.option("--since", help="Only entries after this: 30m, 2h, 7d, 1w or a date (UTC).")
@click.option("--limit", type=int, default=50, show_default=True, help="At most this many.")
@json_option
@with_database
def log_command(channel: str | None, since: str | None, limit: int) -> None:
    """Show the error log: failed mail-server operations, newest first.

    Each entry keeps the server's own answer (e.g. "Authentication failed") and a
    hint at the likely cause.

    \b
    Examples:
      eddymail log --channel support --since 1d
      eddymail log --json --limit 10
    """
    entries = errorlog.list_entries(
        channel_name=channel,
        since=errorlog.parse_since(since) if since else None,
        limit=limit,
    )
    out = state().output
    out.emit(
        {"entries": entries},
        lambda: out.table(
            ["Time", "Channel", "Operation", "Server answer", "Hint"],
            [
                [e.time, e.channel or "-", e.operation, e.answer or e.message, e.hint or "-"]
                for e in entries
            ],
            empty="The error log is empty.",
            wrap=("Server answer", "Hint"),
        ),
    )
