"""eddymail on a real PostgreSQL: the schema, the CLI, fetching, locking and error messages.

Every test gets a fresh empty database on the session's private cluster
(``tests.harness.postgres``) and points the CLI at it through ``EDDYMAIL_DATABASE_URL``, so
these are the same commands a team runs with ``database.url = "postgresql://..."``.
Skipped when psycopg2 or the PostgreSQL binaries are missing, except under ``CI=true``, where
the ``postgres_server`` fixture fails instead with the install hint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote, urlparse

import peewee
import pytest

from eddymail.db import migrations, models
from eddymail.db.connection import close_database, open_database
from tests.mailfactory import make_mail, poison_mail

SEEN = "\\Seen"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def on_empty_postgresql(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the CLI at a fresh empty PostgreSQL database; its URL."""
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", postgres_url)
    return postgres_url


@pytest.fixture
def on_postgresql(on_empty_postgresql: str, eddymail) -> str:
    """Point the CLI at a fresh PostgreSQL database with the current schema and no data.

    A PostgreSQL database gets its schema only by an explicit ``eddymail db migrate`` (or
    ``init``), never from an ordinary command.
    """
    eddymail("db", "migrate")
    return on_empty_postgresql


def database_name(url: str) -> str:
    """The database part of a ``postgresql://`` URL."""
    return urlparse(url).path.lstrip("/")


def rows(postgres_server, url: str, sql: str, parameters: tuple = ()) -> list[tuple]:
    """Run SQL straight against the test's database, bypassing eddymail."""
    return postgres_server.execute(sql, parameters, database=database_name(url))


def ingest(eddymail, folder: Path, *raws: bytes, code: int | None = 0) -> list[dict]:
    """Write each message to a file and ingest them in one run; the per-message outcomes
    (``code=None``: whatever the exit code, and an empty list when nothing came out)."""
    paths = []
    for raw in raws:
        path = folder / f"{hashlib.sha256(raw).hexdigest()[:12]}.eml"
        path.write_bytes(raw)
        paths.append(str(path))
    result = eddymail("ingest", "--department", "Support", *paths, "--json", code=code)
    return json.loads(result.stdout)["messages"] if result.stdout.strip() else []


# --- the schema -------------------------------------------------------------------------------


def test_init_creates_the_schema_and_a_second_run_is_a_no_op(eddymail, on_empty_postgresql,
                                                              postgres_server):
    on_postgresql = on_empty_postgresql
    names = [m.name for m in migrations.all_migrations()]
    first = eddymail.json("init")["init"]
    assert first["applied"] == names and first["schema"] == names
    assert "postgresql://" in first["database"]
    again = eddymail.json("init")["init"]
    assert again["applied"] == [] and again["schema"] == names
    # Straight through the migration API as well: nothing pending, nothing done.
    database = open_database(on_postgresql, prepare_schema=False)
    try:
        assert migrations.apply_migrations(database) == []
        assert migrations.pending_migrations(database) == []
    finally:
        close_database()
    recorded = rows(postgres_server, on_postgresql,
                    "SELECT name FROM schema_migration ORDER BY name")
    assert [name for (name,) in recorded] == names


def test_models_match_the_migrated_schema(on_postgresql):
    database = open_database(on_postgresql)
    try:
        assert isinstance(database, peewee.PostgresqlDatabase)
        for model in models.ALL_MODELS:
            table = model._meta.table_name
            columns = {column.name for column in database.get_columns(table)}
            fields = {field.column_name for field in model._meta.sorted_fields}
            assert columns == fields, (table, columns ^ fields)
    finally:
        close_database()


def test_column_types_fit_what_is_stored(on_postgresql, postgres_server):
    open_database(on_postgresql)
    close_database()
    types = {
        (table, column): data_type
        for table, column, data_type in rows(
            postgres_server, on_postgresql,
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = current_schema()")
    }
    for model in models.ALL_MODELS:
        for field in model._meta.sorted_fields:
            data_type = types[(model._meta.table_name, field.column_name)]
            if isinstance(field, peewee.BlobField):
                # Raw mail and attachments are bytes: bytea, never text with an encoding.
                assert data_type == "bytea", (model.__name__, field.name, data_type)
            elif isinstance(field, peewee.TextField):
                # JSONField included: a JSON document in a text column, as on SQLite.
                assert data_type == "text", (model.__name__, field.name, data_type)
            elif isinstance(field, peewee.BigIntegerField):
                # IMAP UIDVALIDITY and UIDs are unsigned 32-bit: too big for integer.
                assert data_type == "bigint", (model.__name__, field.name, data_type)
            elif isinstance(field, peewee.DateTimeField):
                assert data_type == "timestamp without time zone", (model.__name__, field.name)


def _schema_shape(database: peewee.Database) -> dict[str, dict]:
    """What both engines must agree on, per table: columns, indexes, foreign keys."""
    shape = {}
    for model in models.ALL_MODELS:
        table = model._meta.table_name
        shape[table] = {
            "columns": {(c.name, c.null, c.primary_key) for c in database.get_columns(table)},
            "indexes": {
                index.name: (tuple(index.columns), bool(index.unique),
                             "where" in (index.sql or "").lower())
                for index in database.get_indexes(table)
            },
            "foreign_keys": {(fk.column, fk.dest_table, fk.dest_column)
                             for fk in database.get_foreign_keys(table)},
        }
    return shape


def test_sqlite_and_postgresql_get_the_same_schema(on_postgresql, tmp_path):
    sqlite = open_database(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        expected = _schema_shape(sqlite)
    finally:
        close_database()
    postgres = open_database(on_postgresql)
    try:
        actual = _schema_shape(postgres)
    finally:
        close_database()
    for table, want in expected.items():
        have = actual[table]
        assert have["columns"] == want["columns"], table
        assert have["foreign_keys"] == want["foreign_keys"], table
        # Primary keys: PostgreSQL lists their indexes (TABLE_pkey), SQLite only those of
        # non-integer keys (sqlite_autoindex_*). Every other index matches by name and shape,
        # the partial listing indexes of migration 0002 included.
        implicit = {v for n, v in want["indexes"].items() if n.startswith("sqlite_autoindex")}
        primary = {v for n, v in have["indexes"].items() if n.endswith("_pkey")}
        assert implicit <= primary, table
        assert {n: v for n, v in have["indexes"].items() if not n.endswith("_pkey")} == {
            n: v for n, v in want["indexes"].items() if not n.startswith("sqlite_autoindex")
        }, table
    assert actual["ticket"]["indexes"]["ticket_active_last_activity_at"][2] is True


def test_concurrent_first_start_creates_the_schema_once(postgres_url, postgres_server):
    settings = urlparse(postgres_url)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            database = peewee.PostgresqlDatabase(
                database_name(postgres_url), host=settings.hostname, port=settings.port,
                user=settings.username)
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
    recorded = rows(postgres_server, postgres_url, "SELECT name FROM schema_migration")
    assert sorted(name for (name,) in recorded) == [m.name for m in migrations.all_migrations()]


# --- departments, channels, settings, the error log -------------------------------------------


def test_departments_crud(eddymail, on_postgresql):
    eddymail("department", "add", "Support")
    eddymail("department", "add", "Отдел продаж")
    listed = eddymail.json("department", "list")["departments"]
    assert [d["name"] for d in listed] == ["Support", "Отдел продаж"]
    assert listed[0]["created_at"].endswith("Z")
    # Case-insensitive in any script, as on SQLite.
    assert eddymail.json("department", "show", "отдел ПРОДАЖ")["department"]["name"] == (
        "Отдел продаж")
    assert "already exists" in eddymail("department", "add", " SUPPORT ", code=1).stderr
    renamed = eddymail.json("department", "edit", "Отдел продаж", "--name", "Бухгалтерия")
    assert renamed["department"]["name"] == "Бухгалтерия"
    eddymail("department", "remove", "Бухгалтерия")
    assert [d["name"] for d in eddymail.json("department", "list")["departments"]] == ["Support"]


def test_channels_and_settings_crud(eddymail, on_postgresql, support):
    support("notify", "--email", "noreply@example.com", "--smtp-host", "smtp.example.com",
            "--protocol", "none")
    support("incoming", "--email", "in@example.com", "--host", "imap.example.com",
            "--password-command", "pass show mail/incoming", password=None)
    shown = eddymail.json("channel", "show", "incoming")["channel"]
    assert shown["host"] == "imap.example.com"
    assert [c["name"] for c in eddymail.json("channel", "list")["channels"]] == [
        "incoming", "notify"]
    eddymail("channel", "edit", "incoming", "--host", "imap2.example.com", "--port", "1993")
    edited = eddymail.json("channel", "show", "incoming")["channel"]
    assert (edited["host"], edited["port"]) == ("imap2.example.com", 1993)
    # Settings: an upsert (INSERT ... ON CONFLICT) and a JSON value in a text column.
    eddymail("settings", "set", "system-channel", "notify")
    eddymail("settings", "set", "system-channel", "notify")
    assert eddymail.json("settings", "get", "system-channel")["setting"]["value"] == "notify"
    assert eddymail.json("settings", "set", "language", "RU")["setting"]["value"] == "ru"
    settings = {s["key"]: s["value"] for s in eddymail.json("settings", "list")["settings"]}
    assert settings["language"] == "ru" and settings["system-channel"] == "notify"
    eddymail("channel", "remove", "incoming", "--yes")
    assert [c["name"] for c in eddymail.json("channel", "list")["channels"]] == ["notify"]


def test_the_error_log_records_and_filters(eddymail, on_postgresql, support):
    from tests.harness import free_port

    # Nothing listens on this port: the fetch fails and logs what happened.
    support("dead", "--email", "dead@example.test", "--protocol", "imap", "--host",
            "127.0.0.1", "--port", str(free_port()), "--security", "none")
    support("other", "--email", "other@example.test", "--protocol", "none")
    eddymail("fetch", code=3)
    entries = eddymail.json("log")["entries"]
    assert entries and entries[0]["channel"] == "dead"
    assert eddymail.json("log", "--channel", "dead", "--since", "1h")["entries"] == entries
    assert eddymail.json("log", "--channel", "other")["entries"] == []
    assert eddymail.json("log", "--since", "2030-01-01")["entries"] == []


# --- mail in: ingest, threading, attachments, quarantine --------------------------------------


def test_ingest_threads_keeps_unicode_and_lists_with_filters(eddymail, on_postgresql, support,
                                                            tmp_path):
    question = make_mail("Принтер горит", message_id="<q1@customer.example>",
                         body="Здравствуйте, принтер горит.\n")
    results = ingest(
        eddymail, tmp_path, question,
        make_mail("Re: Принтер горит", in_reply_to="<q1@customer.example>",
                  references="<q1@customer.example>", body="Уже потушили.\n"),
        make_mail("Invoice", sender="Bob <bob@other.example>"),
    )
    assert [r["status"] for r in results] == ["new_ticket", "followup", "new_ticket"]
    first, reply, other = (r["ticket_id"] for r in results)
    assert reply == first and other != first
    listed = eddymail.json("ticket", "list")["tickets"]
    assert sorted(t["subject"] for t in listed) == ["Invoice", "Принтер горит"]
    by_requester = eddymail.json("ticket", "list", "--requester", "bob@other.example")
    assert [t["subject"] for t in by_requester["tickets"]] == ["Invoice"]
    assert [t["id"] for t in eddymail.json("ticket", "list", "--search", "горит")["tickets"]] == [
        first]
    assert [t["id"] for t in eddymail.json("ticket", "list", "--search", "потушили")[
        "tickets"]] == [first]
    assert len(eddymail.json("ticket", "list", "--department", "Support")["tickets"]) == 2
    ticket = eddymail.json("ticket", "show", str(first))["ticket"]
    assert ticket["subject"] == "Принтер горит" and ticket["department"] == "Support"
    assert ticket["requester"] == "anna@customer.example"
    assert [m["direction"] for m in ticket["messages"]] == ["in", "in"]
    assert "Уже потушили." in ticket["messages"][1]["body_text"]
    eddymail("ticket", "close", str(other))
    assert [t["id"] for t in eddymail.json("ticket", "list")["tickets"]] == [first]
    assert [t["id"] for t in eddymail.json("ticket", "list", "--status", "closed")[
        "tickets"]] == [other]
    assert len(eddymail.json("ticket", "list", "--status", "all")["tickets"]) == 2
    # The same bytes again are a recorded duplicate (ledger by SHA-256), not a new ticket.
    (repeat,) = ingest(eddymail, tmp_path, question)
    assert (repeat["status"], repeat["ticket_id"]) == ("duplicate", first)


def test_ingested_rows_point_at_each_other(eddymail, on_postgresql, support, tmp_path,
                                           postgres_server):
    message = EmailMessage()
    message["From"] = "Anna <anna@customer.example>"
    message["To"] = "help@example.test"
    message["Subject"] = "Linked rows"
    message.set_content("See attached.\n")
    message.add_attachment(b"data", maintype="application", subtype="octet-stream",
                           filename="data.bin")
    ingest(eddymail, tmp_path, message.as_bytes(), code=None)
    linked = rows(
        postgres_server, on_postgresql,
        "SELECT t.subject, u.email, r.size, a.filename FROM ledger_entry l "
        "JOIN raw_message r ON r.id = l.raw_id JOIN message m ON m.id = l.ticket_message_id "
        "JOIN ticket t ON t.id = m.ticket_id JOIN \"user\" u ON u.id = t.requester_id "
        "JOIN attachment a ON a.message_id = m.id")
    assert linked == [("Linked rows", "anna@customer.example", len(message.as_bytes()),
                       "data.bin")]


def test_attachment_bytes_round_trip_exactly(eddymail, on_postgresql, support, tmp_path,
                                             postgres_server):
    # Every byte value, NULs and bare CR/LF included: what text columns or a codec would break.
    payload = bytes(range(256)) * 64 + b"\x00\r\n\r\x00\xff\xfe"
    message = EmailMessage()
    message["From"] = "Anna <anna@customer.example>"
    message["To"] = "help@example.test"
    message["Subject"] = "Отчёт во вложении"
    message["Message-ID"] = "<attach@customer.example>"
    message.set_content("См. вложение.\n")
    message.add_attachment(payload, maintype="application", subtype="octet-stream",
                           filename="отчёт.bin")
    (result,) = ingest(eddymail, tmp_path, message.as_bytes())
    assert result["status"] == "new_ticket"
    (item,) = eddymail.json("ticket", "attachments", str(result["ticket_id"]))["attachments"]
    assert item["size"] == len(payload)
    target = tmp_path / "saved"
    target.mkdir()
    saved = eddymail.json("ticket", "attachment", "save", str(item["id"]), "--to",
                          str(target))["saved"]
    assert Path(saved["path"]).read_bytes() == payload
    shown = eddymail.json("ticket", "show", str(result["ticket_id"]))["ticket"]
    assert [a["filename"] for a in shown["messages"][0]["attachments"]] == ["отчёт.bin"]
    # The raw message too is kept byte for byte (bytea).
    (raw,) = rows(postgres_server, on_postgresql, "SELECT data FROM raw_message")
    assert bytes(raw[0]) == message.as_bytes()


def test_a_poison_message_is_quarantined_and_kept(eddymail, on_postgresql, support, tmp_path,
                                                  postgres_server):
    results = ingest(eddymail, tmp_path, make_mail("good one"), poison_mail(),
                     make_mail("good two"))
    assert [r["status"] for r in results] == ["new_ticket", "quarantined", "new_ticket"]
    (entry,) = eddymail.json("mail", "list", "--quarantined")["messages"]
    assert "nest" in entry["error"].lower() and entry["status"] == "quarantined"
    stored = rows(
        postgres_server, on_postgresql,
        "SELECT r.data FROM ledger_entry l JOIN raw_message r ON r.id = l.raw_id "
        "WHERE l.status = 'quarantined'")
    assert [bytes(data) for (data,) in stored] == [poison_mail()]
    retried = eddymail.json("mail", "retry", str(entry["id"]), code=1)["result"]
    assert retried["status"] == "quarantined"


def _mail_with(header: str) -> bytes:
    message = EmailMessage()
    message["From"] = ("N" * 400 + " <anna@customer.example>" if header == "display name"
                       else "a" * 300 + "@customer.example" if header == "address"
                       else "Anna <anna@customer.example>")
    message["To"] = "help@example.test"
    message["Subject"] = f"A long {header}"
    message.set_content("Hello.\n")
    if header == "content type":
        message.add_attachment(b"data", maintype="application", subtype="x-" + "y" * 300,
                               filename="data.bin")
    return message.as_bytes()


@pytest.mark.parametrize("header", ["display name", "address", "content type"])
def test_long_header_values_are_stored(eddymail, on_postgresql, support, tmp_path, header):
    (result,) = ingest(eddymail, tmp_path, _mail_with(header))
    assert result["status"] == "new_ticket"


@pytest.fixture(params=[
    "sqlite",
    "postgresql",
])
def engine_url(request, database_path) -> str:
    """The same check on both engines: SQLite shows what PostgreSQL must match."""
    if request.param == "sqlite":
        return f"sqlite:///{database_path}"
    return request.getfixturevalue("on_postgresql")


def _race(monkeypatch, table: str, jobs) -> list[BaseException]:
    """Run ``jobs`` in threads that each hold their own connection, and make every one of
    them reach its INSERT into ``table`` before any inserts: the window two MTA pipes
    delivering at the same moment have. An engine that serialises write transactions
    (SQLite's BEGIN IMMEDIATE) never lets the second job that far while the first is inside;
    then the rendezvous times out and the jobs run one after the other.

    The pause sits in ``execute_sql``, under the ORM, so it holds however the services
    spell the insert (``Model.create``, a prepared statement, ...).
    """
    from eddymail.db.connection import database_proxy

    database = database_proxy.obj
    barrier = threading.Barrier(len(jobs))
    execute_sql = database.execute_sql
    insert = f'INSERT INTO "{table}" '

    def execute_together(sql, *args, **kwargs):
        if sql.lstrip().startswith(insert):
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=1)
        return execute_sql(sql, *args, **kwargs)

    monkeypatch.setattr(database, "execute_sql", execute_together)
    errors: list[BaseException] = []

    def run(job) -> None:
        try:
            job()
        except BaseException as error:  # collected for the assertion
            errors.append(error)
        finally:
            database.close()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


def _ingest_job(raw: bytes, channel_name: str):
    from eddymail.services.ingest.rawmail import destination, ingest_bytes
    from eddymail.services.ingest.records import IngestOptions

    def job() -> None:
        ingest_bytes("<stdin>", raw, destination=destination(channel_name, None),
                     options=IngestOptions.for_run(notify=False))

    return job


@pytest.fixture
def two_pipes(eddymail, engine_url, monkeypatch):
    """Support with two mailboxes fed by MTA pipes (``ingest --channel``); the database open."""
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", engine_url)
    eddymail("department", "add", "Support")
    for name in ("sales", "help"):
        eddymail("channel", "add", name, "--department", "Support", "--email",
                 f"{name}@example.test", "--protocol", "none")
    open_database(engine_url)
    try:
        yield engine_url
    finally:
        close_database()


def test_one_mail_to_two_piped_mailboxes_at_once(eddymail, two_pipes, monkeypatch):
    """A mail to sales@ and help@ reaches both pipes at the same moment: the same raw bytes
    (one raw_message row by SHA-256) are filed for both channels."""
    shared = make_mail("To both of you", to="sales@example.test, help@example.test")
    errors = _race(monkeypatch, "raw_message", [_ingest_job(shared, "sales"),
                                             _ingest_job(shared, "help")])
    assert errors == []
    assert len(eddymail.json("mail", "list")["messages"]) == 2


def test_two_mails_from_one_new_sender_at_once(eddymail, two_pipes, monkeypatch):
    """Two mails from a customer nobody knows yet arrive together: one user, two tickets."""
    jobs = [_ingest_job(make_mail(f"Question {n}", sender="New <new@customer.example>"), name)
            for n, name in enumerate(("sales", "help"))]
    errors = _race(monkeypatch, "user", jobs)
    assert errors == []
    assert [u["email"] for u in eddymail.json("user", "list")["users"]] == [
        "new@customer.example"]
    assert len(eddymail.json("ticket", "list")["tickets"]) == 2


# --- the channel locks -----------------------------------------------------------------------

HOLD_LOCK = """
import sys
from eddymail.db.connection import open_database
from eddymail.services.fetch.locking import channel_lock
database = open_database(sys.argv[1])
with channel_lock(1) as taken:
    backend = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    print("held" if taken else "busy", backend, flush=True)
    sys.stdin.read()
"""


def _try_in_thread(url: str, channel_id: int) -> bool:
    """Whether another thread (so another connection) can take the channel's lock now."""
    from eddymail.db.connection import database_proxy
    from eddymail.services.fetch.locking import channel_lock

    outcome: list[bool] = []

    def attempt() -> None:
        try:
            with channel_lock(channel_id) as taken:
                outcome.append(taken)
        finally:
            database_proxy.obj.close()

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join(timeout=30)
    return outcome == [True]


def test_a_channel_lock_excludes_other_connections_only_for_its_channel(on_postgresql):
    from eddymail.services.fetch.locking import channel_lock

    open_database(on_postgresql)
    try:
        with channel_lock(1) as taken:
            assert taken
            assert not _try_in_thread(on_postgresql, 1)
            assert _try_in_thread(on_postgresql, 2)  # another channel is free
        assert _try_in_thread(on_postgresql, 1)  # released: free again
    finally:
        close_database()


@pytest.mark.parametrize("machine", ["same machine", "another machine"])
def test_a_channel_lock_holds_against_another_process(eddymail, on_postgresql, tmp_path,
                                                      machine):
    eddymail("department", "add", "Support")
    eddymail("channel", "add", "busy", "--department", "Support", "--email", "b@example.test",
             "--protocol", "imap", "--host", "127.0.0.1", "--port", "9", "--security", "none",
             "--password-command", "echo x")
    environment = dict(os.environ)
    if machine == "another machine":
        # Its own data directory: no shared lock file, only the database can tell.
        environment["XDG_DATA_HOME"] = str(tmp_path / "elsewhere")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, on_postgresql], cwd=REPO, env=environment,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        said, backend = holder.stdout.readline().split()
        assert said == b"held", holder.stderr.read()
        open_database(on_postgresql)
        try:
            assert not _try_in_thread(on_postgresql, 1)
        finally:
            close_database()
        # Its only channel is busy: the run does nothing and says so with 75.
        assert "for every channel" in eddymail("fetch", code=75).stderr
        assert eddymail("-q", "fetch", code=75).stderr == ""
    finally:
        holder.kill()  # like kill -9: the session ends, and the lock with it
        holder.wait(timeout=30)
        holder.stdin.close()
        holder.stdout.close()
        holder.stderr.close()
    database = open_database(on_postgresql)
    try:
        # The server ends the dead client's session when it sees the socket closed; wait for
        # that (not for a time: a hang guard only), then the lock must be free.
        gone = "SELECT count(*) FROM pg_stat_activity WHERE pid = %s"
        for _ in range(6000):
            if database.execute_sql(gone, (int(backend),)).fetchone()[0] == 0:
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"PostgreSQL kept the killed holder's session {int(backend)}")
        assert _try_in_thread(on_postgresql, 1)
    finally:
        close_database()


# --- errors never show the password -----------------------------------------------------------


def test_a_wrong_port_is_a_clear_error_without_the_password(eddymail, postgres_server,
                                                            monkeypatch):
    from tests.harness import free_port

    url = postgres_server.url("eddymail", user="eddy", password="s3cret-Pa55",
                              port=free_port())
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", url)
    result = eddymail("department", "list", code=4)
    assert "s3cret-Pa55" not in result.stderr + result.stdout
    assert "eddy:***@127.0.0.1" in result.stderr
    assert "Traceback" not in result.stderr
    as_json = eddymail("--json", "department", "list", code=4)
    assert as_json.stdout == "" and "s3cret-Pa55" not in as_json.stderr


def test_a_wrong_password_is_a_clear_error_without_the_password(eddymail, postgres_server,
                                                                postgres_url, monkeypatch):
    postgres_server.create_role("eddy", "right-password")
    try:
        url = postgres_server.url(database_name(postgres_url), user="eddy",
                                  password="wrong-Pa55")
        monkeypatch.setenv("EDDYMAIL_DATABASE_URL", url)
        result = eddymail("department", "list", code=4)
        assert "wrong-Pa55" not in result.stderr + result.stdout
        assert "password authentication failed" in result.stderr
        assert "eddy:***@" in result.stderr
    finally:
        postgres_server.execute('DROP ROLE IF EXISTS "eddy"')


def test_a_missing_database_is_a_clear_error(eddymail, postgres_server, monkeypatch):
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", postgres_server.url("no_such_database"))
    result = eddymail("department", "list", code=4)
    assert "no_such_database" in result.stderr and "Traceback" not in result.stderr


def test_a_password_in_the_query_string_is_never_printed(eddymail, postgres_server,
                                                         monkeypatch):
    from tests.harness import free_port

    url = postgres_server.url("eddymail", user="eddy", port=free_port()) + "?password=s3cretQ"
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", url)
    result = eddymail("department", "list", code=4)
    assert "s3cretQ" not in result.stderr + result.stdout


def test_a_percent_encoded_password_in_the_url_works(eddymail, postgres_server, postgres_url,
                                                     monkeypatch):
    password = "p@ss:w/rd#%ü"
    postgres_server.create_role("eddy_encoded", password)
    name = database_name(postgres_url)
    # Its own database, as a deployment would have it (PostgreSQL 15 lets only the owner
    # create tables in the public schema).
    postgres_server.execute(f'ALTER DATABASE "{name}" OWNER TO eddy_encoded')
    url = postgres_server.url(name, user="eddy_encoded", password=quote(password, safe=""))
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", url)
    eddymail("db", "migrate")
    eddymail("department", "add", "Support")
    assert [d["name"] for d in eddymail.json("department", "list")["departments"]] == [
        "Support"]


def test_a_connection_error_reads_as_one_sentence(eddymail, postgres_server, monkeypatch):
    from tests.harness import free_port

    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", postgres_server.url("x", port=free_port()))
    result = eddymail("department", "list", code=4)
    assert "Connection refused" in result.stderr
    assert "\\x0a" not in result.stderr and "\\x09" not in result.stderr


# --- fetch from the real Dovecot into PostgreSQL ----------------------------------------------


@pytest.fixture
def helpdesk(eddymail, on_postgresql, dovecot, mail_user, smtp_server):
    """Support with an IMAPS + SMTP channel on the test user's mailbox; its mail user."""
    smtp_server.add_user(mail_user.login, mail_user.password)
    eddymail("department", "add", "Support")
    eddymail(
        "channel", "add", "support", "--department", "Support", "--email", mail_user.address,
        "--login", mail_user.login, "--protocol", "imap", "--host", dovecot.host,
        "--port", str(dovecot.imaps_port), "--security", "ssl",
        "--ca-file", str(dovecot.pki.ca_file), "--smtp-host", smtp_server.host,
        "--smtp-port", str(smtp_server.port), "--smtp-security", "starttls",
        "--password-stdin", input=mail_user.password + "\n",
    )
    return mail_user


def test_fetch_reply_and_answer_round_trip(eddymail, helpdesk, dovecot, smtp_server,
                                           postgres_server, on_postgresql):
    dovecot.deliver(helpdesk, make_mail("Old and read"), seen=True)
    dovecot.deliver(helpdesk, make_mail("Ошибка в счёте", message_id="<inv@customer.example>"))
    dovecot.deliver(helpdesk, poison_mail())
    (report,) = eddymail.json("fetch", "--no-notify")["channels"]
    assert report["ok"] is True and report["error"] is None
    assert (report["fetched"], report["new_tickets"], report["quarantined"]) == (2, 1, 1)
    (ticket,) = eddymail.json("ticket", "list")["tickets"]
    assert ticket["subject"] == "Ошибка в счёте"
    assert len(eddymail.json("mail", "list", "--quarantined")["messages"]) == 1
    for stored in dovecot.messages(helpdesk):
        assert SEEN in stored.flags
    # The ledger (bigint UIDVALIDITY/UID) makes a second run take nothing.
    assert eddymail.json("fetch", "--no-notify")["channels"][0]["fetched"] == 0
    # A reply goes out through the outbox (raw bytes in bytea) ...
    sent = eddymail.json("ticket", "reply", str(ticket["id"]), "-m", "Исправим сегодня.")
    assert sent["sent"] is True
    (letter,) = smtp_server.wait_for(1)
    (outbox_raw,) = rows(postgres_server, on_postgresql, "SELECT raw FROM outbox_item")
    assert bytes(outbox_raw[0]) == letter.data
    # ... and the customer's answer to it joins the same ticket.
    our_id = next(line for line in letter.data.split(b"\r\n")
                  if line.lower().startswith(b"message-id:")).split(b":", 1)[1].strip().decode()
    dovecot.deliver(helpdesk, make_mail("Re: Ошибка в счёте", body="Спасибо!\n",
                                        in_reply_to=our_id, references=our_id))
    (report,) = eddymail.json("fetch", "--no-notify")["channels"]
    assert report["followups"] == 1 and report["new_tickets"] == 0
    shown = eddymail.json("ticket", "show", str(ticket["id"]))["ticket"]
    assert [m["direction"] for m in shown["messages"]] == ["in", "out", "in"]


def test_one_mail_with_a_long_display_name_does_not_stop_the_channel(eddymail, helpdesk,
                                                                     dovecot):
    eddymail("fetch", "--no-notify")  # first connection, empty mailbox
    dovecot.deliver(helpdesk, make_mail("before"))
    dovecot.deliver(helpdesk, _mail_with("display name"))
    dovecot.deliver(helpdesk, make_mail("after"))
    eddymail("fetch", "--no-notify", code=None)
    eddymail("fetch", "--no-notify", code=None)  # a retry must get past it too
    subjects = {t["subject"] for t in eddymail.json("ticket", "list")["tickets"]}
    assert subjects == {"before", "A long display name", "after"}


# --- the harness itself -----------------------------------------------------------------------


def test_the_private_server_is_ours_and_on_loopback(postgres_server):
    assert postgres_server.is_running()
    (address,) = postgres_server.execute("SELECT inet_server_addr()::text")[0]
    assert address in ("127.0.0.1", "127.0.0.1/32")
    (data_directory,) = postgres_server.execute("SHOW data_directory")[0]
    assert data_directory.startswith(str(postgres_server.directory))
    with open(Path(data_directory) / "postmaster.pid") as pid_file:
        assert int(pid_file.readline()) == postgres_server.pid


def test_missing_postgresql_skips_locally_and_fails_under_ci(monkeypatch):
    from tests.harness.plugin import _postgres_unavailable

    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        _postgres_unavailable("PostgreSQL is not installed: apt-get install postgresql")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install postgresql"):
        _postgres_unavailable("PostgreSQL is not installed: apt-get install postgresql")


def test_start_postgres_names_the_package_when_binaries_are_missing(tmp_path):
    from tests.harness.postgres import MISSING_MESSAGE, start_postgres

    with pytest.raises(RuntimeError, match="apt-get install postgresql") as caught:
        start_postgres(tmp_path / "cluster", bin_dir=tmp_path / "nowhere")
    assert str(caught.value) == MISSING_MESSAGE
