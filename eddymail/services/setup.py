"""The schema on request: ``eddymail init`` and ``eddymail db migrate|status``.

These are the only commands that open the database without preparing its schema first
(see ``eddymail.db.migrations``): they are how the schema is created, upgraded and looked at.
"""

from __future__ import annotations

from dataclasses import dataclass

import peewee

from eddymail.db import connection as db
from eddymail.db import migrations
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


@dataclass(frozen=True)
class MigrateReport:
    """What ``db migrate`` did: the migrations it applied and the schema it left."""

    database: str
    applied: list[str]
    schema: list[str]


@dataclass(frozen=True)
class SchemaReport:
    """Where the database's schema stands against this version of eddymail."""

    database: str
    engine: str
    state: str
    """``current``, ``pending`` (run ``db migrate``), ``empty`` (run ``init``) or ``newer``."""
    applied: list[str]
    pending: list[str]
    unknown: list[str]
    """Migrations of a newer eddymail that this one does not know."""
    migrates_itself: bool
    """Whether ordinary commands upgrade it on the fly (SQLite) or wait for ``db migrate``."""


def initialise(runtime: Runtime) -> InitReport:
    """Apply pending migrations, create a first department if there is none, report it."""
    migrated = migrate(runtime)
    with db.translate_errors(runtime.config.database_url):
        created = None
        # A helpdesk needs somewhere to put tickets: a fresh one starts with "Support".
        if not Department.select().exists():
            created = Department.create(name=DEFAULT_DEPARTMENT).name
    return InitReport(database=migrated.database, applied=migrated.applied,
                      schema=migrated.schema, created_department=created)


def migrate(runtime: Runtime) -> MigrateReport:
    """Apply pending migrations. Raises ``DatabaseError`` when the database is newer."""
    database = runtime.open_database(prepare_schema=False)
    with db.translate_errors(runtime.config.database_url):
        applied = migrations.apply_migrations(database)
        schema = migrations.applied_migrations(database)
    return MigrateReport(database=runtime.database_location, applied=applied, schema=schema)


def schema_status(runtime: Runtime) -> SchemaReport:
    """Applied and pending migrations; changes nothing, refuses nothing."""
    database = runtime.open_database(prepare_schema=False)
    with db.translate_errors(runtime.config.database_url):
        status = migrations.schema_status(database)
    return SchemaReport(
        database=runtime.database_location,
        engine=_engine_name(database),
        state=status.state,
        applied=status.applied,
        pending=status.pending,
        unknown=status.unknown,
        migrates_itself=migrations.migrates_itself(database),
    )


def _engine_name(database: peewee.Database) -> str:
    """``sqlite``, ``postgresql`` or (for another playhouse engine) its class name."""
    if isinstance(database, peewee.SqliteDatabase):
        return "sqlite"
    if isinstance(database, peewee.PostgresqlDatabase):
        return "postgresql"
    return type(database).__name__
