"""``eddymail db``: the database schema, upgraded on request and reported."""

from __future__ import annotations

import click

from eddymail.cli.app import json_option, state
from eddymail.services import setup

_STATES = {
    "current": "up to date",
    "pending": "older than this eddymail: run `eddymail db migrate`",
    "empty": "no eddymail tables yet: run `eddymail init`",
    "newer": "newer than this eddymail: upgrade eddymail",
}


@click.group("db")
def db_group() -> None:
    """The database schema: which migrations it has, and upgrading it.

    A SQLite database upgrades itself when a newer eddymail opens it. A PostgreSQL
    database is shared by every host of a team, so it is upgraded only by `db migrate`:
    after upgrading the eddymail package, run it once, on one host.

    \b
    Examples:
      eddymail db status
      eddymail db migrate
    """


@db_group.command("migrate")
@json_option
def migrate() -> None:
    """Apply the migrations this eddymail has and the database has not.

    Refuses (exit 4) a database already upgraded by a newer eddymail. Safe to run again
    and from several hosts at once: only one applies each migration.

    \b
    Example:
      eddymail db migrate
    """
    report = setup.migrate(state().runtime)
    out = state().output

    def render() -> None:
        if report.applied:
            out.success(f"Database at {report.database} upgraded "
                        f"(applied: {', '.join(report.applied)}).")
        else:
            out.success(f"Database at {report.database} is up to date.")

    out.emit({"migrate": report}, render)


@db_group.command("status")
@json_option
def status() -> None:
    """Show the applied and the pending migrations; change nothing.

    \b
    Examples:
      eddymail db status
      eddymail db status --json
    """
    report = setup.schema_status(state().runtime)
    out = state().output

    def render() -> None:
        out.fields([
            ("Database", report.database),
            ("Engine", report.engine),
            ("Schema", _STATES.get(report.state, report.state)),
            ("Upgrades", "itself when opened" if report.migrates_itself
             else "with `eddymail db migrate`"),
            ("Applied", ", ".join(report.applied) or "-"),
            ("Pending", ", ".join(report.pending) or "-"),
            *([("Unknown", ", ".join(report.unknown))] if report.unknown else []),
        ])

    out.emit({"schema": report}, render)
