"""The schema: named, ordered migrations; upgrades keep data; models match the tables."""

from __future__ import annotations

import sqlite3
import threading

import peewee
import pytest

from eddymail.db import migrations, models
from eddymail.db.connection import close_database, database_proxy, open_database
from eddymail.errors import DatabaseError


def test_models_match_the_migrated_schema(database_path):
    database = open_database(f"sqlite:///{database_path}")
    try:
        for model in models.ALL_MODELS:
            table = model._meta.table_name
            columns = {column.name for column in database.get_columns(table)}
            fields = {field.column_name for field in model._meta.sorted_fields}
            assert columns == fields, (table, columns ^ fields)
    finally:
        close_database()


def test_sqlite_is_set_up_for_cron_and_people_at_once(database_path):
    database = open_database(f"sqlite:///{database_path}", busy_timeout=7)
    try:
        assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
        assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 7000
    finally:
        close_database()


def test_init_creates_then_reports_up_to_date(eddymail, database_path):
    first = eddymail.json("init")["init"]
    assert first["applied"] == [m.name for m in migrations.all_migrations()]
    assert first["database"] == f"sqlite:///{database_path}"  # shown as configured
    assert database_path.exists()
    again = eddymail.json("init")["init"]
    assert again["applied"] == [] and again["schema"] == first["applied"]


def test_upgrade_from_the_first_schema_version_keeps_data(eddymail, database_path):
    database = peewee.SqliteDatabase(str(database_path))
    database_proxy.initialize(database)
    database.connect()
    first = migrations.all_migrations()[0].name
    assert migrations.apply_migrations(database, until=first) == [first]
    # Data as a version-1 eddymail would have written it.
    database.execute_sql(
        "INSERT INTO department (name, created_at) VALUES ('Support', '2026-01-01 00:00:00')")
    database.execute_sql(
        "INSERT INTO channel (name, department_id, email, display_name, enabled, protocol, "
        "host, port, security, login, folder, smtp_host, smtp_security, smtp_login, "
        "after_fetch, move_to_folder, unread_only, initial_limit, notify_initial, authserv_id, "
        "created_at, updated_at) VALUES ('support', 1, 'help@example.com', '', 1, 'imap', "
        "'imap.example.com', 993, 'ssl', 'help@example.com', 'INBOX', '', 'ssl', '', "
        "'mark_read', '', 0, 100, 1, '', '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    database.close()
    eddymail("init")
    assert eddymail.json("department", "list")["departments"][0]["channels"] == ["support"]
    assert eddymail.json("channel", "show", "support")["channel"]["host"] == "imap.example.com"
    names = [row[0] for row in sqlite3.connect(database_path).execute(
        "SELECT name FROM schema_migration ORDER BY name")]
    assert names == [m.name for m in migrations.all_migrations()]


def test_a_newer_database_is_refused(eddymail, database_path):
    eddymail("init")
    connection = sqlite3.connect(database_path)
    connection.execute("INSERT INTO schema_migration VALUES ('9999_future', '2030-01-01')")
    connection.commit()
    result = eddymail("department", "list", code=4)
    assert "upgraded by a newer eddymail" in result.stderr


def test_concurrent_first_start_creates_the_schema_once(database_path):
    url = f"sqlite:///{database_path}"
    errors: list[BaseException] = []

    def start() -> None:
        try:
            database = peewee.SqliteDatabase(str(database_path), timeout=15,
                                             pragmas={"journal_mode": "wal"})
            database.connect()
            migrations.apply_migrations(database)
            database.close()
        except BaseException as error:  # collected for the assertion below
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    database = open_database(url)
    try:
        assert migrations.applied_migrations(database) == [
            m.name for m in migrations.all_migrations()]
    finally:
        close_database()


def test_unusable_database_path_is_a_clear_error(eddymail, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", f"sqlite:///{blocker}/sub/eddymail.db")
    result = eddymail("department", "list", code=4)
    assert "Traceback" not in result.stderr and "Error:" in result.stderr


def test_postgresql_urls_go_through_playhouse(monkeypatch):
    pytest.importorskip("psycopg2")
    with pytest.raises(DatabaseError) as caught:
        open_database("postgresql://eddy:s3cret@127.0.0.1:1/eddymail")
    assert "s3cret" not in str(caught.value)
