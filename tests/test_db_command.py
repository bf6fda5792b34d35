"""``eddymail db migrate|status`` and who may change the schema, on SQLite and PostgreSQL.

A SQLite file belongs to one machine and upgrades itself when opened; a PostgreSQL database is
shared by several hosts and changes only by an explicit ``eddymail db migrate`` (or ``init``).
Every command refuses a schema newer than its code, and on PostgreSQL one older than it.
"""

from __future__ import annotations

import sqlite3
from urllib.parse import urlparse

import pytest

from eddymail.db import migrations
from eddymail.db.connection import close_database, open_database

NAMES = [migration.name for migration in migrations.all_migrations()]
FUTURE = "9999_from_the_future"
ORDINARY_COMMANDS = [("department", "list"), ("ticket", "list", "--json"), ("fetch",),
                     ("settings", "list")]


class Engine:
    """The database a test's CLI uses, and a way to look at it behind eddymail's back."""

    def __init__(self, kind: str, url: str, postgres_server=None) -> None:
        self.kind = kind
        self.url = url
        self.postgres_server = postgres_server

    def sql(self, statement: str, parameters: tuple = ()) -> list[tuple]:
        """Run one statement straight on the database; its rows."""
        if self.kind == "sqlite":
            with sqlite3.connect(urlparse(self.url).path) as connection:
                return connection.execute(statement.replace("%s", "?"), parameters).fetchall()
        return self.postgres_server.execute(statement, parameters,
                                            database=urlparse(self.url).path.lstrip("/"))

    def recorded(self) -> list[str]:
        """The migrations the database records, by name."""
        tables = (self.sql("SELECT name FROM sqlite_master WHERE name = 'schema_migration'")
                  if self.kind == "sqlite" else
                  self.sql("SELECT tablename FROM pg_tables WHERE tablename = 'schema_migration'"))
        if not tables:
            return []
        return sorted(name for (name,) in self.sql("SELECT name FROM schema_migration"))

    def upgrade_until(self, last: str) -> None:
        """Give the database the schema of an older eddymail: migrations up to ``last``."""
        database = open_database(self.url, prepare_schema=False)
        try:
            migrations.apply_migrations(database, until=last)
        finally:
            close_database()

    def add_future_migration(self) -> None:
        """What a newer eddymail's ``db migrate`` leaves behind."""
        self.upgrade_until(NAMES[-1])
        self.sql("INSERT INTO schema_migration (name, applied_at) VALUES (%s, %s)",
                 (FUTURE, "2030-01-01 00:00:00"))


def _point_the_cli_at(kind: str, request, monkeypatch) -> Engine:
    if kind == "sqlite":
        return Engine("sqlite", f"sqlite:///{request.getfixturevalue('database_path')}")
    url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", url)
    return Engine("postgresql", url, request.getfixturevalue("postgres_server"))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, monkeypatch) -> Engine:
    """A new empty database on each engine in turn, the CLI pointed at it."""
    return _point_the_cli_at(request.param, request, monkeypatch)


@pytest.fixture
def postgresql(request, monkeypatch) -> Engine:
    """A new empty PostgreSQL database, the CLI pointed at it."""
    return _point_the_cli_at("postgresql", request, monkeypatch)


@pytest.fixture
def sqlite(request, monkeypatch) -> Engine:
    """A new empty SQLite database (not created yet), the CLI pointed at it."""
    return _point_the_cli_at("sqlite", request, monkeypatch)


def test_status_lists_applied_and_pending_and_changes_nothing(eddymail, engine):
    engine.upgrade_until(NAMES[0])
    status = eddymail.json("db", "status")["schema"]
    assert (status["state"], status["applied"], status["pending"], status["unknown"]) == (
        "pending", NAMES[:1], NAMES[1:], [])
    assert status["engine"] == engine.kind
    assert status["migrates_itself"] is (engine.kind == "sqlite")
    assert engine.recorded() == NAMES[:1]  # status upgrades nothing, even on SQLite
    shown = eddymail("db", "status").stdout
    assert "older than this eddymail: run `eddymail db migrate`" in shown
    assert NAMES[1] in shown


def test_status_of_an_empty_and_of_a_current_database(eddymail, engine):
    empty = eddymail.json("db", "status")["schema"]
    assert (empty["state"], empty["applied"], empty["pending"]) == ("empty", [], NAMES)
    assert "run `eddymail init`" in eddymail("db", "status").stdout
    eddymail("db", "migrate")
    current = eddymail.json("db", "status")["schema"]
    assert (current["state"], current["applied"], current["pending"]) == ("current", NAMES, [])
    assert "up to date" in eddymail("db", "status").stdout


def test_db_migrate_applies_what_is_pending_once(eddymail, engine):
    engine.upgrade_until(NAMES[1])
    report = eddymail.json("db", "migrate")["migrate"]
    assert (report["applied"], report["schema"]) == (NAMES[2:], NAMES)
    assert engine.recorded() == sorted(NAMES)
    again = eddymail("db", "migrate")
    assert "up to date" in again.stdout
    assert eddymail.json("db", "migrate")["migrate"]["applied"] == []


@pytest.mark.parametrize("command", ORDINARY_COMMANDS, ids=" ".join)
def test_postgresql_older_than_the_code_is_refused_until_db_migrate(eddymail, postgresql,
                                                                    command):
    postgresql.upgrade_until(NAMES[1])
    refused = eddymail(*command, code=4)
    assert "older than this eddymail" in refused.stderr
    assert "run `eddymail db migrate`" in refused.stderr
    assert NAMES[2] in refused.stderr and "Traceback" not in refused.stderr
    assert postgresql.recorded() == sorted(NAMES[:2])  # another host's schema: untouched
    eddymail("db", "migrate")
    eddymail(*command, code=None if command == ("fetch",) else 0)
    assert postgresql.recorded() == sorted(NAMES)


def test_an_empty_postgresql_gets_its_tables_from_init_only(eddymail, postgresql):
    refused = eddymail("department", "list", code=4)
    assert "no eddymail tables yet: run `eddymail init`" in refused.stderr
    assert postgresql.recorded() == []
    assert postgresql.sql("SELECT tablename FROM pg_tables WHERE schemaname = "
                          "current_schema()") == []
    assert eddymail.json("init")["init"]["applied"] == NAMES
    assert [d["name"] for d in eddymail.json("department", "list")["departments"]] == [
        "Support"]


def test_init_still_upgrades_an_older_postgresql(eddymail, postgresql):
    postgresql.upgrade_until(NAMES[0])
    assert eddymail.json("init")["init"]["applied"] == NAMES[1:]
    eddymail("department", "list")


def test_sqlite_older_than_the_code_upgrades_itself(eddymail, sqlite):
    sqlite.upgrade_until(NAMES[0])
    eddymail("department", "add", "Support")
    assert sqlite.recorded() == sorted(NAMES)


@pytest.mark.parametrize("command", [*ORDINARY_COMMANDS, ("db", "migrate"), ("init",)],
                         ids=" ".join)
def test_a_schema_newer_than_the_code_is_refused(eddymail, engine, command):
    engine.add_future_migration()
    refused = eddymail(*command, code=4)
    assert "upgraded by a newer eddymail" in refused.stderr
    assert "upgrade eddymail" in refused.stderr and FUTURE in refused.stderr
    assert "Traceback" not in refused.stderr
    assert engine.recorded() == sorted([*NAMES, FUTURE])


def test_status_reports_a_newer_schema_without_refusing(eddymail, engine):
    engine.add_future_migration()
    status = eddymail.json("db", "status")["schema"]
    assert (status["state"], status["unknown"], status["pending"]) == ("newer", [FUTURE], [])
    assert "newer than this eddymail: upgrade eddymail" in eddymail("db", "status").stdout


def test_opening_an_older_postgresql_from_code_is_refused_too(postgresql):
    from eddymail.errors import DatabaseError

    postgresql.upgrade_until(NAMES[0])
    with pytest.raises(DatabaseError, match="eddymail db migrate"):
        open_database(postgresql.url)
    close_database()
    assert postgresql.recorded() == NAMES[:1]
