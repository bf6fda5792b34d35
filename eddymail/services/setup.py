"""Creating and upgrading the database on request (``eddymail init``)."""

from __future__ import annotations

from dataclasses import dataclass

from eddymail import db
from eddymail.migrations import applied_migrations, apply_migrations
from eddymail.services.runtime import Runtime


@dataclass(frozen=True)
class InitReport:
    """What ``init`` did."""

    database: str
    applied: list[str]
    schema: list[str]


def initialise(runtime: Runtime) -> InitReport:
    """Open the database without auto-upgrade, apply what is pending and report it."""
    database = db.open_database(
        runtime.config.database_url,
        busy_timeout=float(runtime.config.get("database", "busy_timeout")),
        migrate=False,
    )
    runtime.database_open = True
    with db.translate_errors(runtime.config.database_url):
        applied = apply_migrations(database)
        schema = applied_migrations(database)
    return InitReport(database=runtime.database_location, applied=applied, schema=schema)
