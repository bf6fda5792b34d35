"""Creating and upgrading the database on request (``eddymail init``)."""

from __future__ import annotations

from dataclasses import dataclass

from eddymail.db import connection as db
from eddymail.db.migrations import applied_migrations, apply_migrations
from eddymail.db.models import Department
from eddymail.services.runtime import Runtime

DEFAULT_DEPARTMENT = "Support"


@dataclass(frozen=True)
class InitReport:
    """What ``init`` did."""

    database: str
    applied: list[str]
    schema: list[str]
    created_department: str | None


def initialise(runtime: Runtime) -> InitReport:
    """Apply pending migrations, create a first department if there is none, report it."""
    database = db.open_database(
        runtime.config.database_url,
        busy_timeout=float(runtime.config.get("database", "busy_timeout")),
        migrate=False,
    )
    runtime.database_open = True
    with db.translate_errors(runtime.config.database_url):
        applied = apply_migrations(database)
        schema = applied_migrations(database)
        created = None
        # A helpdesk needs somewhere to put tickets: a fresh one starts with "Support".
        if not Department.select().exists():
            created = Department.create(name=DEFAULT_DEPARTMENT).name
    return InitReport(database=runtime.database_location, applied=applied, schema=schema,
                      created_department=created)
