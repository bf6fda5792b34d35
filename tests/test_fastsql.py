"""`eddymail.db.fastsql` writes and reads exactly what peewee's own create/select would."""

from __future__ import annotations

import pytest

from eddymail.db import fastsql
from eddymail.db.connection import close_database, open_database
from eddymail.db.models import (
    Attachment,
    Channel,
    Department,
    LedgerEntry,
    Message,
    RawMessage,
    Ticket,
    User,
)


@pytest.fixture
def database(database_path):
    database = open_database(f"sqlite:///{database_path}")
    yield database
    close_database()


def row(database, model, row_id):
    table = model._meta.table_name
    values = database.execute_sql(f'SELECT * FROM "{table}" WHERE id = ?', (row_id,)).fetchone()
    names = [column[0] for column in database.execute_sql(
        f'SELECT * FROM "{table}" LIMIT 0').description]
    return {name: value for name, value in zip(names, values, strict=True)
            if name not in ("id", "created_at", "updated_at", "last_activity_at",
                            "next_attempt_at")}


def test_create_writes_the_same_row_as_peewee(database):
    department = Department.create(name="Support")
    channel = Channel.create(name="c", department=department, email="h@example.test")
    cases = [
        (User, {"email": "a@example.test", "name": "Анна"}),
        (RawMessage, {"sha256": "ab", "size": 3, "data": b"\x00\xff\r\n"}),
        (Ticket, {"subject": "Тема", "department": department, "requester_address": "a@x",
                  "channel": channel, "carried_tag": None, "message_count": 1}),
        (LedgerEntry, {"channel": channel, "source": "imap", "folder": "INBOX",
                       "uidvalidity": 7, "uid": 9, "sha256": "ab", "status": "imported"}),
    ]
    unique = {User: "email", RawMessage: "sha256", LedgerEntry: "folder"}
    for model, values in cases:
        ours = fastsql.create(model, **values)
        other = dict(values)
        if model in unique:  # the same row again would break the unique index
            other[unique[model]] = "other-" + values[unique[model]]
        theirs = model.create(**other)
        expected, got = row(database, model, theirs.id), row(database, model, ours.id)
        if model in unique:
            expected.pop(unique[model]), got.pop(unique[model])
        assert got == expected, model
        assert ours.id != theirs.id and isinstance(ours.id, int)
    ticket = Ticket.get()
    message = fastsql.create(Message, ticket=ticket, direction="in", to=[{"address": "x"}])
    assert Message.get_by_id(message.id).to == [{"address": "x"}]
    attachment = fastsql.create(Attachment, message=message, filename="a.bin", data=b"\x01")
    assert bytes(Attachment.get_by_id(attachment.id).data) == b"\x01"


def test_first_matches_select_first(database):
    department = Department.create(name="Support")
    channel = Channel.create(name="c", department=department, email="h@example.test")
    entry = LedgerEntry.create(channel=channel, source="file", sha256="ab", status="imported")
    LedgerEntry.create(channel=None, source="file", sha256="ab", status="duplicate")
    found = fastsql.first(LedgerEntry, channel=channel.id, source="file", sha256="ab")
    assert found.id == entry.id and found.status == "imported"
    orphan = fastsql.first(LedgerEntry, channel=None, source="file", sha256="ab")
    assert orphan.status == "duplicate"  # None means IS NULL
    assert fastsql.first(LedgerEntry, channel=channel.id, source="file", sha256="zz") is None
    only_id = fastsql.first(LedgerEntry, columns=("id",), channel=channel.id, source="file",
                            sha256="ab")
    assert only_id.id == entry.id
    assert fastsql.first(User, email="nobody@example.test") is None


def test_update_writes_what_peewee_update_writes(database):
    department = Department.create(name="Support")
    channel = Channel.create(name="c", department=department, email="h@example.test")
    ours = LedgerEntry.create(channel=channel, source="pop3", uidl="a", sha256="", status="p")
    theirs = LedgerEntry.create(channel=channel, source="pop3", uidl="b", sha256="", status="p")
    values = {"status": "imported", "error": None, "size": 42, "sha256": "ff",
              "server_done": True, "message_id": "x@y"}
    fastsql.update(LedgerEntry, ours.id, **values)
    LedgerEntry.update(**values).where(LedgerEntry.id == theirs.id).execute()
    expected, got = row(database, LedgerEntry, theirs.id), row(database, LedgerEntry, ours.id)
    expected.pop("uidl"), got.pop("uidl")
    assert got == expected and got["status"] == "imported" and got["size"] == 42


def test_unknown_fields_are_refused(database):
    with pytest.raises(TypeError, match="no field"):
        fastsql.create(User, email="a@b", nickname="x")
    with pytest.raises(KeyError, match="no field nickname"):
        fastsql.update(User, 1, name="x", nickname="x")



def test_sql_kept_for_one_engine_never_serves_another_at_the_same_address(tmp_path,
                                                                          postgres_url):
    """SQLite and PostgreSQL one after the other in one process, each database object freed
    just before the next is made: CPython may give the new object the address (the ``id()``)
    of the old one, and SQL kept for the old engine must not be used for it (SQLite's ``?`` on
    PostgreSQL, or ``%s`` on SQLite, is a syntax error). Whether an address is reused depends
    on the Python release and on what ran before (on 3.13 instances of the two classes may
    differ in size and never share one), so the test also checks the cause directly: the
    SQL of a freed database is forgotten with it, whatever address comes next."""
    import gc
    from urllib.parse import urlparse

    import peewee

    from eddymail.db import migrations
    from eddymail.db.connection import database_proxy

    sqlite_file = tmp_path / "one.db"
    for url in (f"sqlite:///{sqlite_file}", postgres_url):
        migrations.apply_migrations(open_database(url, prepare_schema=False))
        close_database()
    server = urlparse(postgres_url)
    engines = [
        (peewee.SqliteDatabase, (str(sqlite_file),), {}),
        (peewee.PostgresqlDatabase, (server.path.lstrip("/"),),
         {"host": server.hostname, "port": server.port, "user": server.username}),
    ]
    # Whether the allocator hands the freed address to the next object depends on the
    # Python release (on 3.13 the freed object may wait for the cycle collector): take turns
    # with and without a collection until an address was reused a few times.
    reused = 0
    for turn in range(60):
        engine, args, options = engines[turn % 2]
        before = id(database_proxy.obj)
        database_proxy.initialize(None)  # the last database object is freed here ...
        if turn % 4 >= 2:
            gc.collect()
        database = engine(*args, **options)  # ... and its memory is the first to be reused
        reused += id(database) == before
        database_proxy.initialize(database)
        try:
            user = fastsql.create(User, email=f"u{turn}@example.test", name="Before")
            fastsql.update(User, user.id, name="After")
            found = fastsql.first(User, columns=("id", "name"), email=f"u{turn}@example.test")
            assert found is not None and (found.id, found.name) == (user.id, "After"), engine
            assert fastsql.first(User, email="nobody@example.test") is None
        finally:
            database.close()
            del database
        if reused >= 3:
            break
    # The cause, whatever the allocator did: a database's kept SQL goes when it goes.
    database_proxy.initialize(None)
    gc.collect()
    kept_before = len(fastsql._BY_DATABASE)
    probe = peewee.SqliteDatabase(str(sqlite_file))
    database_proxy.initialize(probe)
    assert fastsql.first(User, email="nobody@example.test") is None
    assert len(fastsql._BY_DATABASE) == kept_before + 1
    database_proxy.initialize(None)
    probe.close()
    del probe
    gc.collect()
    assert len(fastsql._BY_DATABASE) == kept_before, "SQL of a freed database is still kept"
