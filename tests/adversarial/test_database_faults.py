"""The database fails under a fetch: locked by another writer, or full.

The promise under test: the server is told (``\\Seen``, move, delete, DELE) only about mail
that is committed. A fetch that cannot write waits as long as the busy timeout allows, then
stops cleanly (exit 4, a sentence saying "locked" or "full", no traceback), and the next
run takes what this one could not.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest

from eddymail.db import connection as db
from tests.harness.dovecot import DovecotServer, MailUser
from tests.mailfactory import make_mail

SEEN = "\\Seen"
EXIT_ENVIRONMENT = 4


@pytest.fixture
def channel(support, dovecot: DovecotServer, mail_user: MailUser) -> Callable[..., None]:
    """Adds the ``support`` channel on the test user's mailbox (IMAPS or POP3S)."""

    def add(protocol: str = "imap", *options: str) -> None:
        port = dovecot.imaps_port if protocol == "imap" else dovecot.pop3s_port
        support("support", "--email", mail_user.address, "--login", mail_user.login,
                "--protocol", protocol, "--host", dovecot.host, "--port", str(port),
                "--security", "ssl", "--ca-file", str(dovecot.pki.ca_file), *options,
                password=mail_user.password)

    return add


def config_with_busy_timeout(tmp_path: Path, seconds: float) -> Path:
    """An ``eddymail.toml`` with this SQLite busy timeout."""
    path = tmp_path / f"busy-{seconds}.toml"
    path.write_text(f"[database]\nbusy_timeout = {seconds}\n")
    return path


@contextlib.contextmanager
def another_writer(database: Path, release: threading.Event | None = None) -> Iterator[None]:
    """Another process's write transaction (``BEGIN IMMEDIATE``, a write, then a commit) on
    the database, like a staff member saving a long reply. It commits when ``release`` is
    set, at the latest when the block ends."""
    holding = threading.Event()
    done = release or threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        connection = sqlite3.connect(database, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("UPDATE department SET name = name")
            holding.set()
            done.wait()
            connection.execute("COMMIT")
        except BaseException as error:  # handed to the test below
            errors.append(error)
        finally:
            holding.set()
            connection.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    holding.wait()
    assert not errors, f"the other writer never got the lock: {errors}"
    try:
        yield
    finally:
        done.set()
        thread.join()
    assert not errors, errors


@pytest.fixture
def write_attempts(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Set when a database connection the CLI opens starts a write transaction: SQLite's
    trace hook runs as the ``BEGIN`` statement starts, before it waits for the lock."""
    attempted = threading.Event()
    original = db.open_database

    def open_and_watch(url: str, **options: Any) -> peewee.Database:
        database = original(url, **options)

        def statement(sql: str) -> None:
            if sql.lstrip().upper().startswith("BEGIN"):
                attempted.set()

        database.connection().set_trace_callback(statement)
        return database

    monkeypatch.setattr(db, "open_database", open_and_watch)
    return attempted


def flags(dovecot: DovecotServer, user: MailUser) -> list[set[str]]:
    """The flags of every message in INBOX, by UID."""
    return [message.flags for message in dovecot.messages(user)]


def assert_clean_database_failure(result: Any, word: str) -> None:
    """Exit 4, the reason in one sentence, no traceback and no "bug" report."""
    assert result.exit_code == EXIT_ENVIRONMENT, (result.exit_code, result.output)
    assert word in result.stderr, result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert "Unexpected" not in result.stderr and "bug" not in result.stderr, result.stderr


def ledger_rows(database: Path) -> list[tuple[Any, ...]]:
    """``(status, server_done)`` of every ledger row."""
    connection = sqlite3.connect(database)
    try:
        return connection.execute(
            "SELECT status, server_done FROM ledger_entry ORDER BY id").fetchall()
    finally:
        connection.close()


# --- locked -----------------------------------------------------------------------------------


def test_fetch_waits_for_a_writer_shorter_than_the_busy_timeout(
        eddymail, channel, dovecot, mail_user, database_path, tmp_path, write_attempts):
    """Another writer holds the database until the fetch has begun a write transaction (and
    a moment longer); the busy timeout is 15 s: the fetch waits for it and takes the mail
    (SQLite would refuse a deferred transaction's upgrade to a writer at once, whatever the
    busy timeout). Not timed: the writer lets go only once the fetch asked for the lock."""
    channel()
    eddymail("fetch")  # the first connection, on an empty mailbox
    dovecot.deliver(mail_user, make_mail("while someone writes"))
    config = config_with_busy_timeout(tmp_path, 15)
    release = threading.Event()

    def release_once_the_fetch_waits() -> None:
        write_attempts.wait()
        time.sleep(0.5)  # the fetch is inside SQLite's busy wait by now
        release.set()

    threading.Thread(target=release_once_the_fetch_waits, daemon=True).start()
    with another_writer(database_path, release):
        (report,) = eddymail.json("-c", str(config), "fetch")["channels"]
    assert write_attempts.is_set(), "the fetch never began a write transaction"
    assert report["ok"] and report["new_tickets"] == 1, report
    assert flags(dovecot, mail_user) == [{SEEN}]


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_fetch_locked_out_longer_than_its_busy_timeout_stops_cleanly_and_flags_nothing(
        eddymail, channel, dovecot, mail_user, database_path, tmp_path, protocol):
    """Another writer holds the database for the whole run; the busy timeout is 0.5 s. The
    fetch stops:
    exit 4 with a "locked" sentence, no traceback; the message it had downloaded is not
    marked read (IMAP) or deleted (POP3) on the server, and the next run takes it."""
    options = ["--after-fetch", "delete"] if protocol == "pop3" else []
    channel(protocol, *options)
    eddymail("fetch")  # the first connection, on an empty mailbox
    dovecot.deliver(mail_user, make_mail("while someone writes for too long"))
    config = config_with_busy_timeout(tmp_path, 0.5)
    with another_writer(database_path):
        locked = eddymail("-c", str(config), "fetch", code=None)
        assert_clean_database_failure(locked, "locked")
        if protocol == "imap":
            assert flags(dovecot, mail_user) == [set()]  # still there, still unread
        else:  # Dovecot marks what POP3 RETR read; what matters is that it was not deleted
            assert len(dovecot.messages(mail_user)) == 1
        assert ledger_rows(database_path) == []
    (report,) = eddymail.json("fetch")["channels"]
    assert report["ok"] and report["new_tickets"] == 1, report
    assert flags(dovecot, mail_user) == ([{SEEN}] if protocol == "imap" else [])


# --- full ---------------------------------------------------------------------------------------


class DiskRoom:
    """How many more pages each new connection may add to the database (None: no limit)."""

    pages: int | None = None


@pytest.fixture
def disk_room(monkeypatch: pytest.MonkeyPatch) -> DiskRoom:
    """Set ``disk_room.pages`` and from then on every connection may grow the database by at
    most that many pages (``PRAGMA max_page_count``), like a disk that is nearly full."""
    room = DiskRoom()
    original = db.open_database

    def open_with_little_room(url: str, **options: Any) -> peewee.Database:
        database = original(url, **options)
        if room.pages is not None:
            count = database.execute_sql("PRAGMA page_count").fetchone()[0]
            database.execute_sql(f"PRAGMA max_page_count = {count + room.pages}")
        return database

    monkeypatch.setattr(db, "open_database", open_with_little_room)
    return room


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_full_database_stops_the_fetch_without_telling_the_server(
        eddymail, channel, dovecot, mail_user, database_path, disk_room, protocol):
    """A small message fits, the 1 MB one after it does not: exit 4 with a "full" sentence,
    no traceback (not SQLite's "cannot rollback" or "no such savepoint" that used to hide
    it). Neither message is marked read or deleted on the server. A batch is committed at
    once (IMAP and POP3 alike), so the small message goes back with the big one. Once there
    is room the next run finishes both, each once."""
    channel(protocol, "--after-fetch", "mark_read" if protocol == "imap" else "delete")
    eddymail("fetch")
    dovecot.deliver(mail_user, make_mail("small enough"))
    dovecot.deliver(mail_user, make_mail("too big for the disk", body="x" * 1_000_000 + "\n"))
    disk_room.pages = 40
    full = eddymail("fetch", code=None)
    assert_clean_database_failure(full, "full")
    assert ledger_rows(database_path) == []
    if protocol == "imap":
        assert flags(dovecot, mail_user) == [set(), set()]
    else:
        assert len(dovecot.messages(mail_user)) == 2  # no QUIT, no deletion at all

    disk_room.pages = None  # room again
    (report,) = eddymail.json("fetch")["channels"]
    assert report["ok"] and (report["new_tickets"], report["duplicates"]) == (2, 0), report
    assert ledger_rows(database_path) == [("imported", 1), ("imported", 1)]
    assert flags(dovecot, mail_user) == ([{SEEN}, {SEEN}] if protocol == "imap" else [])
    assert len(eddymail.json("ticket", "list")["tickets"]) == 2
