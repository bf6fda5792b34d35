"""Named, ordered schema migrations, recorded in the ``schema_migration`` table.

Each migration is a module ``mNNNN_name.py`` with an ``upgrade(database)`` function. A
migration never imports ``eddymail.db.models``: it describes the tables as they were at its own
version, so it does the same thing on a new database today as it did when it was written.
Pending migrations run in one write transaction (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL
advisory lock), so two processes starting at once cannot both upgrade.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import peewee

from eddymail.errors import DatabaseError

# Order matters and names are forever: add new ones at the end, never rename or remove.
MIGRATION_MODULES: tuple[str, ...] = (
    "m0001_initial", "m0002_listing_indexes", "m0003_postgresql_text_columns",
)

MIGRATIONS_TABLE = "schema_migration"
_POSTGRES_LOCK_KEY = 0x6564_6479  # "eddy": one advisory lock for schema upgrades


@dataclass(frozen=True)
class Migration:
    """One named step of the schema's history."""

    name: str
    upgrade: Callable[[peewee.Database], None]


def all_migrations() -> list[Migration]:
    """Every known migration, oldest first."""
    migrations = []
    for module_name in MIGRATION_MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        migrations.append(Migration(name=module_name.removeprefix("m"), upgrade=module.upgrade))
    return migrations


def applied_migrations(database: peewee.Database) -> list[str]:
    """Names of the migrations recorded in ``database``, in the order they were applied."""
    if not database.table_exists(MIGRATIONS_TABLE):
        return []
    table = _table(database)
    query = table.select(table.name).order_by(table.applied_at, table.name).tuples()
    return [row[0] for row in query]


def pending_migrations(database: peewee.Database) -> list[Migration]:
    """Migrations not yet applied. Raises ``DatabaseError`` when the database is newer."""
    known = all_migrations()
    applied = set(applied_migrations(database))
    unknown = applied - {migration.name for migration in known}
    if unknown:
        raise DatabaseError(
            "The database was upgraded by a newer eddymail (unknown migrations: "
            f"{', '.join(sorted(unknown))}); upgrade eddymail before using it."
        )
    return [migration for migration in known if migration.name not in applied]


def apply_migrations(database: peewee.Database, *, until: str | None = None) -> list[str]:
    """Apply pending migrations (up to and including ``until``); return the names applied."""
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


def _table(database: peewee.Database) -> peewee.Table:
    return peewee.Table(MIGRATIONS_TABLE, ("name", "applied_at")).bind(database)


def _ensure_table(database: peewee.Database) -> None:
    database.execute_sql(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} "
        "(name VARCHAR(255) NOT NULL PRIMARY KEY, applied_at TIMESTAMP NOT NULL)"
    )


def _exclusive(database: peewee.Database):
    if isinstance(database, peewee.SqliteDatabase):
        return database.atomic("IMMEDIATE")
    transaction = database.atomic()

    class _Locked:
        def __enter__(self):
            transaction.__enter__()
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_POSTGRES_LOCK_KEY,))
            return self

        def __exit__(self, *exc):
            return transaction.__exit__(*exc)

    return _Locked()
