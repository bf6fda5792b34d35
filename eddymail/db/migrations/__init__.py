"""Named, ordered schema migrations, recorded in the ``schema_migration`` table.

Each migration is a module ``mNNNN_name.py`` with an ``upgrade(database)`` function. A
migration never imports ``eddymail.db.models``: it describes the tables as they were at its own
version, so it does the same thing on a new database today as it did when it was written.
Pending migrations run in one write transaction (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL
advisory lock), so two processes starting at once cannot both upgrade.

Who upgrades: a SQLite file belongs to one machine, so it upgrades itself when opened. A
PostgreSQL database is shared by every host of a team, and a host that was upgraded first
must not change the schema under hosts still running the old code: it is upgraded only by an
explicit ``eddymail db migrate`` (or ``eddymail init``), and ordinary commands refuse to work
on a schema older than their code. Every engine refuses a schema newer than the code.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import NamedTuple

import peewee

from eddymail.errors import DatabaseError

# Order matters and names are forever: add new ones at the end, never rename or remove.
MIGRATION_MODULES: tuple[str, ...] = (
    "m0001_initial", "m0002_listing_indexes", "m0003_postgresql_text_columns",
    "m0004_channel_oauth", "m0005_support_desk", "m0006_trust", "m0007_scale_out",
    "m0008_desk_search", "m0009_desk2_tickets", "m0010_rtt_cursor_uidnext",
    "m0011_memory", "m0013_outbox_message_id_index",
)

MIGRATIONS_TABLE = "schema_migration"
_POSTGRES_LOCK_KEY = 0x6564_6479  # "eddy": one advisory lock for schema upgrades

MIGRATE_COMMAND = "eddymail db migrate"


class Migration(NamedTuple):
    """One named step of the schema's history.

    Its module is imported only when the step runs: every command checks whether a step is
    pending, and a migration may import heavy tools (``playhouse.migrate`` brings PostgreSQL's
    driver) that a start-up must not pay for.
    """

    module_name: str

    @property
    def name(self) -> str:
        """The name recorded in the migrations table (``0001_initial``)."""
        return self.module_name.removeprefix("m")

    def upgrade(self, database: peewee.Database) -> None:
        """Run the step's ``upgrade(database)``."""
        module = importlib.import_module(f"{__name__}.{self.module_name}")
        module.upgrade(database)


class SchemaStatus(NamedTuple):
    """Where a database's schema stands against this version of the code."""

    applied: list[str]
    """Migrations recorded in the database, in the order they were applied."""
    pending: list[str]
    """Migrations this code knows and the database has not had yet."""
    unknown: list[str]
    """Migrations recorded in the database that this code does not know (a newer eddymail)."""

    @property
    def state(self) -> str:
        """``current``, ``pending`` (older than the code), ``empty`` or ``newer``."""
        if self.unknown:
            return "newer"
        if not self.applied:
            return "empty"
        return "pending" if self.pending else "current"


def all_migrations() -> list[Migration]:
    """Every known migration, oldest first."""
    return [Migration(module_name) for module_name in MIGRATION_MODULES]


def applied_migrations(database: peewee.Database) -> list[str]:
    """Names of the migrations recorded in ``database``, in the order they were applied."""
    if not database.table_exists(MIGRATIONS_TABLE):
        return []
    cursor = database.execute_sql("SELECT name FROM schema_migration ORDER BY applied_at, name")
    return [row[0] for row in cursor.fetchall()]


def schema_status(database: peewee.Database) -> SchemaStatus:
    """Applied, pending and unknown migrations of ``database``; never raises for a newer one."""
    known = [migration.name for migration in all_migrations()]
    applied = applied_migrations(database)
    return SchemaStatus(
        applied=applied,
        pending=[name for name in known if name not in applied],
        unknown=[name for name in applied if name not in known],
    )


def pending_migrations(database: peewee.Database) -> list[Migration]:
    """Migrations not yet applied. Raises ``DatabaseError`` when the database is newer."""
    status = schema_status(database)
    if status.unknown:
        raise _newer_error(status)
    return [migration for migration in all_migrations() if migration.name in status.pending]


def apply_migrations(database: peewee.Database, *, until: str | None = None) -> list[str]:
    """Apply pending migrations (up to and including ``until``); return the names applied.

    Raises ``DatabaseError`` (nothing applied) when the database is newer than this code.
    """
    if not pending_migrations(database):
        return []  # the common case: no write transaction at start-up
    done: list[str] = []
    with _exclusive(database):
        _ensure_table(database)
        for migration in pending_migrations(database):  # again, now that we hold the lock
            migration.upgrade(database)
            _table(database).insert(
                name=migration.name, applied_at=datetime.now(UTC).replace(tzinfo=None)
            ).execute()
            done.append(migration.name)
            if migration.name == until:
                break
    return done


def migrates_itself(database: peewee.Database) -> bool:
    """Whether opening ``database`` may upgrade its schema (a SQLite file: one machine)."""
    return isinstance(database, peewee.SqliteDatabase)


def prepare_schema(database: peewee.Database) -> None:
    """Make sure the schema fits this code before anything else touches the database.

    SQLite is upgraded on the spot; any other engine must already be up to date (see the
    module's docstring). Raises ``DatabaseError`` with the command that fixes it.
    """
    if migrates_itself(database):
        apply_migrations(database)
    else:
        require_current_schema(database)


def require_current_schema(database: peewee.Database) -> None:
    """Raise ``DatabaseError`` unless ``database`` has exactly this code's migrations."""
    status = schema_status(database)
    if status.state == "newer":
        raise _newer_error(status)
    if status.state == "empty":
        raise DatabaseError("The database has no eddymail tables yet: run `eddymail init`.")
    if status.state == "pending":
        raise DatabaseError(
            "The database schema is older than this eddymail (pending migrations: "
            f"{', '.join(status.pending)}): run `{MIGRATE_COMMAND}` (once, on one host).",
            hint="hosts still running the previous eddymail keep working until then, and "
            "ask to be upgraded after it",
        )


def _newer_error(status: SchemaStatus) -> DatabaseError:
    return DatabaseError(
        "The database was upgraded by a newer eddymail (unknown migrations: "
        f"{', '.join(status.unknown)}); upgrade eddymail before using it."
    )


def _table(database: peewee.Database) -> peewee.Table:
    return peewee.Table(MIGRATIONS_TABLE, ("name", "applied_at")).bind(database)


def _ensure_table(database: peewee.Database) -> None:
    database.execute_sql(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
        "(name VARCHAR(255) NOT NULL PRIMARY KEY, applied_at TIMESTAMP NOT NULL)"
    )


@contextlib.contextmanager
def _exclusive(database: peewee.Database) -> Iterator[None]:
    """One write transaction that no other process can be upgrading in at the same time."""
    if isinstance(database, peewee.SqliteDatabase):
        with database.atomic("IMMEDIATE"):
            yield
        return
    with database.atomic():
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_POSTGRES_LOCK_KEY,))
        yield
