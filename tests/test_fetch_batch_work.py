"""The work a fetch does per message and per batch, counted (never timed), and what a batch
does when one of its messages fails alone: refused by the database, or breaking eddymail's
own code (``services/fetch/batch.py``)."""

from __future__ import annotations

import logging
import sqlite3

import peewee
import pytest

from eddymail import errors
from eddymail.db.connection import _SqliteDatabase
from eddymail.services.fetch.batch import fails_alone
from tests.mailfactory import make_mail

# One new ticket from a customer already known: its ledger row read, raw bytes inserted,
# an earlier copy looked for by Message-ID, the user read, ticket, message, search entry and
# ledger row inserted (and no savepoint around it: see services/fetch/batch.py).
STATEMENTS_PER_NEW_TICKET = 8


@pytest.fixture
def channel(eddymail, support, dovecot, mail_user):
    """Adds an IMAP or POP3 channel for the test user."""

    def add(*options: str, protocol: str = "imap") -> None:
        port = dovecot.imaps_port if protocol == "imap" else dovecot.pop3s_port
        support("box", "--email", mail_user.address, "--login", mail_user.login,
                "--protocol", protocol, "--host", dovecot.host, "--port", str(port),
                "--security", "ssl", "--ca-file", str(dovecot.pki.ca_file), *options,
                password=mail_user.password)

    return add


def known_customer_mail(subject: str) -> bytes:
    return make_mail(subject, sender="Anna Customer <anna@customer.example>")


@pytest.fixture
def commits(monkeypatch):
    """How many transactions were committed (counted where peewee commits them)."""
    counted = []
    commit = _SqliteDatabase.commit

    def counting(self, *args, **kwargs):
        counted.append(1)
        return commit(self, *args, **kwargs)

    monkeypatch.setattr(_SqliteDatabase, "commit", counting)
    return counted


@pytest.fixture
def config_file(tmp_path):
    """Writes an ``eddymail.toml`` with the given ``[fetch]`` keys; returns its path."""

    def write(**fetch: int):
        path = tmp_path / "eddymail.toml"
        path.write_text("[fetch]\n" + "".join(f"{key} = {value}\n" for key, value in fetch.items()))
        return path

    return write


def statements_of(eddymail, caplog, *args: str) -> int:
    """The statements ``eddymail ARGS`` runs, from peewee's debug log."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="peewee"):
        eddymail(*args)
    return sum(record.name == "peewee" for record in caplog.records)


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_stored_message_costs_a_fixed_number_of_statements(
        eddymail, channel, dovecot, mail_user, caplog, protocol):
    """Counted as the difference between fetching 9 new messages and fetching 3 (the run's
    own bookkeeping is the same in both), from a customer known before."""
    channel("--initial", "0", protocol=protocol)
    dovecot.deliver(mail_user, known_customer_mail("first"))
    eddymail("fetch")  # the starting point: nothing taken yet
    dovecot.deliver(mail_user, known_customer_mail("first, taken"))
    eddymail("fetch")  # Anna is known from here on
    for count in (3, 9):
        for number in range(count):
            dovecot.deliver(mail_user, known_customer_mail(f"batch of {count}: {number}"))
        if count == 3:
            few = statements_of(eddymail, caplog, "fetch")
        else:
            many = statements_of(eddymail, caplog, "fetch")
    assert (many - few) / 6 == STATEMENTS_PER_NEW_TICKET


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_each_batch_commits_once(eddymail, channel, dovecot, mail_user, config_file, commits,
                                 protocol):
    """Seven messages in batches of three: three commits for the mail, whatever the protocol,
    counted against a run that takes one message."""
    channel("--initial", "0", protocol=protocol)
    config = config_file(batch_size=3)
    eddymail("-c", str(config), "fetch")  # the starting point
    for number in range(7):
        dovecot.deliver(mail_user, make_mail(f"batched {number}"))
    commits.clear()
    eddymail("-c", str(config), "fetch")
    with_mail = len(commits)
    commits.clear()
    dovecot.deliver(mail_user, make_mail("alone"))
    eddymail("-c", str(config), "fetch")
    one_batch = len(commits)
    assert with_mail - one_batch == 2  # batches of 3, 3, 1 against a batch of 1
    assert len(eddymail.json("ticket", "list", "--status", "all")["tickets"]) == 8


REFUSED_SUBJECT = "refuse me"


def refuse_messages(database_path, subject: str = REFUSED_SUBJECT) -> None:
    """Make the database refuse to store a message with this subject (a constraint-like
    error, as PostgreSQL raises for a value its column cannot hold)."""
    connection = sqlite3.connect(database_path)
    with connection:
        connection.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON message WHEN NEW.subject = ? "
            "BEGIN SELECT RAISE(ABORT, 'refused by a test trigger'); END".replace(
                "?", f"'{subject}'"))
    connection.close()


def accept_messages(database_path) -> None:
    connection = sqlite3.connect(database_path)
    with connection:
        connection.execute("DROP TRIGGER refuse")
    connection.close()


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_refused_message_is_left_out_of_its_batch_and_taken_next_run(
        eddymail, channel, dovecot, mail_user, database_path, protocol):
    """The middle message of a batch is refused: the two around it are committed and
    deleted from the server, the channel fails (exit 3), the refused one stays on the
    server, unknown to the ledger, and is taken (once) when the database accepts it."""
    channel("--initial", "all", "--after-fetch", "delete", protocol=protocol)
    for subject in ("before it", REFUSED_SUBJECT, "after it"):
        dovecot.deliver(mail_user, make_mail(subject))
    eddymail("ticket", "list")  # the database exists
    refuse_messages(database_path)
    report = eddymail.json("fetch", code=3)["channels"][0]
    assert report["ok"] is False and "refused by a test trigger" in report["error"]
    assert report["new_tickets"] == 2
    left = [stored.raw for stored in dovecot.messages(mail_user)]
    assert len(left) == 1 and REFUSED_SUBJECT.encode() in left[0]
    subjects = [ticket["subject"] for ticket in
                eddymail.json("ticket", "list", "--status", "all")["tickets"]]
    assert sorted(subjects) == ["after it", "before it"]

    accept_messages(database_path)
    again = eddymail.json("fetch")["channels"][0]
    assert again["ok"] and again["new_tickets"] == 1
    assert dovecot.messages(mail_user) == []
    assert eddymail.json("fetch")["channels"][0]["fetched"] == 0
    subjects = [ticket["subject"] for ticket in
                eddymail.json("ticket", "list", "--status", "all")["tickets"]]
    assert sorted(subjects) == ["after it", "before it", REFUSED_SUBJECT]


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
@pytest.mark.parametrize("bug", [ValueError("no thread for this mail"), KeyError("charset"),
                                 RecursionError("maximum recursion depth exceeded")])
def test_a_message_that_breaks_storing_fails_alone(eddymail, channel, dovecot, mail_user,
                                                   monkeypatch, protocol, bug):
    """A message that brings out a bug while it is stored (an error of eddymail's own, not the
    database's) costs only itself: the others of its batch are committed and deleted, the
    bug is then told as one (exit 1, the CLI's "unexpected" boundary), and the message stays
    on the server to be taken (once) when the code stores it."""
    from eddymail.services.ingest import pipeline

    channel("--initial", "all", "--after-fetch", "delete", protocol=protocol)
    for subject in ("first", "break me", "last"):
        dovecot.deliver(mail_user, make_mail(subject))
    real = pipeline.automatic_kind

    def breaking(parsed, own_addresses):
        if parsed.subject == "break me":
            raise bug
        return real(parsed, own_addresses)

    monkeypatch.setattr(pipeline, "automatic_kind", breaking)
    told = eddymail("fetch", code=1)
    assert f"Unexpected {type(bug).__name__}" in told.stderr and "bug" in told.stderr
    left = [stored.raw for stored in dovecot.messages(mail_user)]
    assert len(left) == 1 and b"break me" in left[0]
    subjects = [ticket["subject"] for ticket in
                eddymail.json("ticket", "list", "--status", "all")["tickets"]]
    assert sorted(subjects) == ["first", "last"]

    monkeypatch.setattr(pipeline, "automatic_kind", real)
    again = eddymail.json("fetch")["channels"][0]
    assert again["ok"] and again["new_tickets"] == 1
    assert dovecot.messages(mail_user) == []
    subjects = [ticket["subject"] for ticket in
                eddymail.json("ticket", "list", "--status", "all")["tickets"]]
    assert sorted(subjects) == ["break me", "first", "last"]


@pytest.mark.parametrize("error", [
    sqlite3.IntegrityError("UNIQUE constraint failed"),  # the driver's, unwrapped
    peewee.IntegrityError("value too long"), peewee.DataError("invalid byte sequence"),
    ValueError("bug"), KeyError("bug"), UnicodeEncodeError("utf-8", "\udc80", 0, 1, "bug"),
    RecursionError("deep"), peewee.DoesNotExist("the ticket went away"),
])
def test_what_fails_alone(error):
    assert fails_alone(error)


@pytest.mark.parametrize("error", [
    sqlite3.OperationalError("database or disk is full"),  # the driver's, unwrapped
    sqlite3.DatabaseError("database disk image is malformed"),
    peewee.OperationalError("database is locked"), peewee.InterfaceError("connection gone"),
    peewee.InternalError("current transaction is aborted"), OSError(28, "No space left"),
    MemoryError(), errors.TemporaryFailure("busy"), errors.LockBusyError("locked"),
])
def test_what_fails_the_batch_whole(error):
    assert not fails_alone(error)
