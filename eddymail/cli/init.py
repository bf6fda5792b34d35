"""``eddymail init``: create or upgrade the database."""

from __future__ import annotations

import click

from eddymail.cli.app import json_option, state
from eddymail.services import setup


@click.command("init")
@json_option
def init_command() -> None:
    """Create the database, or upgrade it to this version's schema.

    A new database gets a first department, Support. Safe to run again at any time.
    Other commands upgrade a SQLite database on the fly; a PostgreSQL database is
    upgraded only by this command or `eddymail db migrate`.

    \b
    Example:
      eddymail init
    """
    runtime = state().runtime
    report = setup.initialise(runtime)
    out = state().output

    def render() -> None:
        if report.applied:
            out.success(
                f"Database ready at {report.database} (applied: {', '.join(report.applied)})."
            )
        else:
            out.success(f"Database at {report.database} is up to date.")
        if report.created_department:
            out.line(f"Department {report.created_department} created.")

    out.emit({"init": report}, render)
