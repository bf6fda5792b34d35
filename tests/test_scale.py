"""Scale-out (issue 13): channels fetched in parallel, per-channel locks, several processes
(standing in for hosts) on one SQLite file or one PostgreSQL database.

Every fetch is a real child process so it can be killed with SIGKILL; races between two
processes are arranged with the step hooks of ``eddymail.crashpoints`` (a process stops at a
named step until the test lets it go on), never with sleeps.
"""

from __future__ import annotations

import contextlib
import json
import random
import shlex
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock
import pytest

from eddymail.crashpoints import PAUSE_DIR_ENV, PAUSE_ENV
from eddymail.services.fetch.locking import lock_directory
from tests.faults import append_messages, reaped, run_cli, start_cli
from tests.harness.dovecot import DovecotServer, MailUser
from tests.mailfactory import make_mail

SEEN = "\\Seen"
KILL_SEED = 1313


# --- a helpdesk of many mailboxes on either engine ---------------------------------------------


@dataclass
class Helpdesk:
    """Channels ``box0..boxN`` on the test Dovecot, and a way to read the database."""

    url: str
    users: list[MailUser]
    query: Callable[..., list[tuple[Any, ...]]]

    @property
    def names(self) -> list[str]:
        return [f"box{index}" for index in range(len(self.users))]


def _sqlite_query(path: Path) -> Callable[..., list[tuple[Any, ...]]]:
    def query(sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            return connection.execute(sql.replace("%s", "?"), parameters).fetchall()
        finally:
            connection.close()
    return query


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, database_path, monkeypatch) -> tuple[str, Callable[..., list]]:
    """The database URL the children use, and a query function for the test."""
    if request.param == "sqlite":
        return f"sqlite:///{database_path}", _sqlite_query(database_path)
    url = request.getfixturevalue("postgres_url")
    server = request.getfixturevalue("postgres_server")
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", url)
    request.getfixturevalue("eddymail")("db", "migrate")  # PostgreSQL: schema on request only
    name = url.rsplit("/", 1)[1]

    def query(sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in server.execute(sql, parameters, database=name)]
    return url, query


def make_helpdesk(eddymail, dovecot: DovecotServer, tmp_path: Path, url: str,
                  query: Callable[..., list], count: int) -> Helpdesk:
    eddymail("department", "add", "Support")
    users = [dovecot.create_user() for _ in range(count)]
    for index, user in enumerate(users):
        password_file = tmp_path / f"password-{index}"
        password_file.write_text(user.password + "\n")
        eddymail("channel", "add", f"box{index}", "--department", "Support",
                 "--email", user.address, "--login", user.login, "--protocol", "imap",
                 "--host", "127.0.0.1", "--port", str(dovecot.imaps_port),
                 "--security", "ssl", "--ca-file", str(dovecot.pki.ca_file),
                 "--password-command", f"cat {shlex.quote(str(password_file))}")
    return Helpdesk(url, users, query)


def mails(prefix: str, count: int) -> list[tuple[str, bytes]]:
    """``count`` new threads, each from its own sender, as ``(Message-ID, raw)``."""
    made = []
    for number in range(count):
        message_id = f"{prefix}-{number}@customer.example"
        made.append((message_id, make_mail(
            f"{prefix} {number}", sender=f"C{number} <{prefix}{number}@customer.example>",
            message_id=f"<{message_id}>")))
    return made


def assert_each_once(desk: Helpdesk, expected: list[str]) -> None:
    """Exactly these messages are stored, each once and in its own ticket."""
    incoming = [row[0] for row in desk.query(
        "SELECT message_id FROM message WHERE direction = 'in'")]
    twice = {mid: n for mid, n in Counter(incoming).items() if n > 1}
    assert not twice, f"stored more than once: {twice}"
    assert set(incoming) == set(expected), (
        f"lost: {sorted(set(expected) - set(incoming))[:10]}; "
        f"unexpected: {sorted(set(incoming) - set(expected))[:10]}")
    assert desk.query("SELECT COUNT(*) FROM ticket") == [(len(expected),)]
    assert desk.query("SELECT COUNT(*) FROM ledger_entry WHERE NOT server_done") == [(0,)]


def assert_all_seen(dovecot: DovecotServer, desk: Helpdesk) -> None:
    for user in desk.users:
        unread = [m.uid for m in dovecot.messages(user) if SEEN not in m.flags]
        assert not unread, f"{user.login}: never marked read: {unread}"


def assert_no_lock_left(desk: Helpdesk) -> None:
    """Nobody holds a channel lock any more (every process that held one is gone)."""
    if desk.url.startswith("sqlite"):
        for path in lock_directory(desk.url).glob("channel-*.lock"):
            with filelock.FileLock(str(path), timeout=0):
                pass
    else:
        held = desk.query("SELECT COUNT(*) FROM pg_locks l JOIN pg_database d "
                          "ON d.oid = l.database WHERE l.locktype = 'advisory' "
                          "AND d.datname = current_database()")
        assert held == [(0,)], held


def wait_for(condition: Callable[[], bool], hang_guard: float = 300) -> None:
    """Poll ``condition`` until it holds. Only a hang guard gives up (after minutes): the
    test then fails on the state it finds, never on how long anything took."""
    ends = time.monotonic() + hang_guard
    while not condition() and time.monotonic() < ends:
        time.sleep(0.01)


@contextlib.contextmanager
def paused_at(step: str, directory: Path) -> Iterator[tuple[dict[str, str], Callable[[], bool],
                                                            Callable[[], None]]]:
    """The environment that stops a child at ``step``; whether it got there; let it go on."""
    stem = directory / step.replace(" ", "-")
    reached = stem.with_name(stem.name + ".reached")
    release = stem.with_name(stem.name + ".go")
    try:
        yield ({PAUSE_ENV: step, PAUSE_DIR_ENV: str(directory)}, reached.exists,
               release.touch)
    finally:
        release.touch()  # never leave a child waiting


# --- parallel channels in one run ---------------------------------------------------------------


def test_many_channels_at_once_with_mail_arriving_meanwhile_take_each_message_once(
        eddymail, dovecot, tmp_path, engine):
    """Twelve mailboxes fetched four at a time; while the run is in the middle (held at a
    commit), more mail arrives in every mailbox. That run and the next take every message
    exactly once, each in its own ticket, and mark all of it read."""
    url, query = engine
    desk = make_helpdesk(eddymail, dovecot, tmp_path, url, query, 12)
    first = {user.login: mails(f"early-{index}", 3) for index, user in enumerate(desk.users)}
    later = {user.login: mails(f"late-{index}", 2) for index, user in enumerate(desk.users)}
    for user in desk.users:
        append_messages(dovecot, user, [raw for _, raw in first[user.login]])
    with paused_at("imap committed", tmp_path) as (env, reached, release):
        process = start_cli("-q", "fetch", "--jobs", "4", "--initial", "all", env=env)
        with reaped(process):
            wait_for(lambda: reached() or process.poll() is not None)
            assert reached(), process.stderr.read() if process.stderr else ""
            for user in desk.users:  # arrives while the run is in the middle
                append_messages(dovecot, user, [raw for _, raw in later[user.login]])
            release()
            code = process.wait(timeout=600)  # a hang guard: TimeoutExpired, not a verdict
            assert code == 0
    again = run_cli("--json", "fetch", "--jobs", "4")
    assert again.returncode == 0, again.describe()
    reports = json.loads(again.stdout)["channels"]
    assert [report["name"] for report in reports] == sorted(desk.names)  # stable order
    expected = [mid for made in (first, later) for batch in made.values() for mid, _ in batch]
    assert_each_once(desk, expected)
    assert_all_seen(dovecot, desk)
    assert_no_lock_left(desk)


def test_a_busy_channel_is_skipped_with_a_notice_and_the_others_are_fetched(
        eddymail, dovecot, tmp_path, database_path):
    """One channel's lock is held (another run is on it): this run fetches the others, says
    which one it skipped, exits 0; only when every channel is busy does it exit 75."""
    url = f"sqlite:///{database_path}"
    desk = make_helpdesk(eddymail, dovecot, tmp_path, url, _sqlite_query(database_path), 3)
    for index, user in enumerate(desk.users):
        dovecot.deliver(user, mails(f"busy-{index}", 1)[0][1])
    directory = lock_directory(url)
    directory.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(directory / "channel-2.lock"), timeout=0):
        result = eddymail("fetch", "--initial", "all")
        assert "box1: skipped, another eddymail run is fetching it now" in result.stdout
        assert "box0: 1 fetched" in result.stdout and "box2: 1 fetched" in result.stdout
        document = eddymail.json("fetch")
        assert [r["busy"] for r in document["channels"]] == [False, True, False]
        assert eddymail("-q", "fetch", "box1", code=75).stderr == ""
    assert eddymail.json("fetch")["channels"][1]["fetched"] == 1
    assert_each_once(desk, [f"busy-{index}-0@customer.example" for index in range(3)])


def test_a_channel_another_run_began_after_this_one_is_left_to_it(
        eddymail, dovecot, tmp_path, database_path):
    """Several hosts run the same cron job: a channel whose fetch another run began after
    this run began was just done, so this run leaves it (the hosts share the channels)."""
    url = f"sqlite:///{database_path}"
    desk = make_helpdesk(eddymail, dovecot, tmp_path, url, _sqlite_query(database_path), 2)
    eddymail("fetch")
    dovecot.deliver(desk.users[0], mails("later", 1)[0][1])
    with sqlite3.connect(database_path) as connection:  # "another host, a moment from now"
        connection.execute("UPDATE channel SET fetch_started_at = '2999-01-01 00:00:00' "
                           "WHERE name = 'box0'")
    result = eddymail("fetch")
    assert "box0: skipped, another eddymail run fetched it after this one began" in (
        result.stdout)
    assert "box1: 0 fetched" in result.stdout
    assert eddymail("-q", "fetch", "box0", code=75).stderr == ""  # nothing else to do
    with sqlite3.connect(database_path) as connection:
        connection.execute("UPDATE channel SET fetch_started_at = NULL WHERE name = 'box0'")
    assert eddymail.json("fetch", "box0")["channels"][0]["fetched"] == 1
    began = _sqlite_query(database_path)("SELECT fetch_started_at FROM channel ORDER BY name")
    assert all(value is not None for (value,) in began)  # each run notes when it began one


# --- several processes (hosts) and kill -9 ------------------------------------------------------


@pytest.mark.parametrize("workers", [2, 3])
def test_concurrent_workers_killed_at_random_lose_and_double_nothing(
        eddymail, dovecot, tmp_path, engine, workers):
    """``workers`` fetch processes start together over six mailboxes; again and again one of
    them is killed with SIGKILL in the middle of its work, then normal runs follow. Every
    message is a ticket exactly once, marked read, and no channel lock is left behind."""
    url, query = engine
    desk = make_helpdesk(eddymail, dovecot, tmp_path, url, query, 6)
    expected = []
    for index, user in enumerate(desk.users):
        made = mails(f"kill-{workers}-{index}", 12)
        append_messages(dovecot, user, [raw for _, raw in made])
        expected += [mid for mid, _ in made]
    config = tmp_path / "eddymail.toml"
    config.write_text("[fetch]\nbatch_size = 3\njobs = 2\n")
    args = ["-q", "-c", str(config), "fetch", "--initial", "all"]
    rng = random.Random(KILL_SEED + workers)

    def imported() -> int:
        try:
            return query("SELECT COUNT(*) FROM ledger_entry WHERE status = 'imported'")[0][0]
        except Exception:  # the schema may not exist yet
            return 0

    kills = 0
    for _round in range(3):
        before = imported()
        processes = [start_cli(*args) for _ in range(workers)]
        try:
            wait_for(lambda before=before, processes=processes: imported() > before
                     or all(p.poll() is not None for p in processes))
            victim = rng.choice(processes)
            if victim.poll() is None:
                victim.kill()
                kills += 1
            for process in processes:
                code = process.wait(timeout=600)
                # 75: every channel was busy with the other workers; -9: the victim.
                assert code in (0, 75, -9), process.stderr.read() if process.stderr else ""
        finally:
            for process in processes:
                with reaped(process):
                    pass
    assert kills >= 1
    final = run_cli("--json", "fetch")
    assert final.returncode == 0, final.describe()
    assert all(report["ok"] and not report["busy"]
               for report in json.loads(final.stdout)["channels"])
    assert_each_once(desk, expected)
    assert_all_seen(dovecot, desk)
    wait_for(lambda: _no_lock_left(desk))  # a killed session ends as its socket closes
    assert_no_lock_left(desk)


def _no_lock_left(desk: Helpdesk) -> bool:
    try:
        assert_no_lock_left(desk)
    except (AssertionError, filelock.Timeout):
        return False
    return True


# --- PostgreSQL: two hosts, one thread ----------------------------------------------------------


@pytest.fixture
def two_hosts(eddymail, dovecot, tmp_path, postgres_url, postgres_server,
              monkeypatch) -> Helpdesk:
    """Two mailboxes on one PostgreSQL database, both connected once (and empty)."""
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", postgres_url)
    eddymail("db", "migrate")
    name = postgres_url.rsplit("/", 1)[1]

    def query(sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in postgres_server.execute(sql, parameters, database=name)]

    desk = make_helpdesk(eddymail, dovecot, tmp_path, postgres_url, query, 2)
    assert run_cli("-q", "fetch").returncode == 0
    return desk


def race_two_workers(desk: Helpdesk, directory: Path) -> None:
    """Worker A fetches box0 and is held after writing its message, before the commit;
    worker B fetches box1 meanwhile. A goes on once B waits for a lock A holds (or once B
    has finished: what happens when nothing makes it wait)."""

    def waiting_on_a_lock() -> bool:
        return desk.query("SELECT COUNT(*) FROM pg_locks l JOIN pg_database d "
                          "ON d.oid = l.database WHERE NOT l.granted "
                          "AND d.datname = current_database()")[0][0] > 0

    with paused_at("ingest stored", directory) as (env, reached, release):
        worker_a = start_cli("-q", "fetch", "box0", env=env)
        with reaped(worker_a):
            wait_for(lambda: reached() or worker_a.poll() is not None)
            assert reached()
            worker_b = start_cli("-q", "fetch", "box1")
            with reaped(worker_b):
                wait_for(lambda: worker_b.poll() is not None or waiting_on_a_lock())
                release()
                codes = [worker.wait(timeout=600) for worker in (worker_a, worker_b)]
                assert codes == [0, 0]


def test_two_workers_racing_on_one_thread_make_one_ticket(two_hosts, dovecot, tmp_path):
    """A customer's first mail reaches mailbox A and his follow-up (In-Reply-To the first)
    mailbox B; two workers take them at the same instant. B must wait for A's thread lock,
    or it would open a second ticket, finding nothing committed."""
    sender = "Dana <dana@customer.example>"
    dovecot.deliver(two_hosts.users[0], make_mail("Broken login", sender=sender,
                                                  message_id="<root-1@customer.example>"))
    dovecot.deliver(two_hosts.users[1], make_mail(
        "Re: Broken login", sender=sender, message_id="<reply-1@customer.example>",
        in_reply_to="<root-1@customer.example>", references="<root-1@customer.example>"))
    race_two_workers(two_hosts, tmp_path)
    assert two_hosts.query("SELECT COUNT(*), SUM(message_count) FROM ticket") == [(1, 2)]
    assert two_hosts.query("SELECT COUNT(*) FROM message WHERE direction = 'in'") == [(2,)]


def test_the_same_mail_on_two_hosts_at_once_is_stored_once(two_hosts, dovecot, tmp_path):
    """One mail sent to two of our mailboxes, taken by two workers at the same instant: its
    bytes are stored once and it makes one ticket (the second copy is a duplicate)."""
    shared = make_mail("To both of you", message_id="<both-1@customer.example>")
    for user in two_hosts.users:
        dovecot.deliver(user, shared)
    race_two_workers(two_hosts, tmp_path)
    assert two_hosts.query("SELECT COUNT(*) FROM raw_message") == [(1,)]
    assert two_hosts.query("SELECT COUNT(*) FROM ticket") == [(1,)]
    assert sorted(two_hosts.query("SELECT status FROM ledger_entry")) == [
        ("duplicate",), ("imported",)]


def test_outbox_claims_skip_a_row_another_host_holds(eddymail, postgres_url, postgres_server,
                                                    monkeypatch):
    """A sender on another host has row 1 locked (claiming it): this one takes row 2 at
    once instead of waiting, and never row 1."""
    from eddymail.db.connection import close_database, open_database
    from eddymail.db.models import OutboxItem
    from eddymail.services.outgoing import outbox

    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", postgres_url)
    eddymail("init")
    open_database(postgres_url)
    try:
        for number in (1, 2):
            OutboxItem.create(kind="reply", mail_from="a@example.test", raw=b"x",
                              recipients=[f"r{number}@example.test"])
        other = postgres_server.connect(postgres_url.rsplit("/", 1)[1])
        other.autocommit = False  # its row lock lasts until its transaction ends
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT id FROM outbox_item WHERE id = 1 FOR UPDATE")
                assert outbox.claim_next() == 2
                assert outbox.claim_next() is None
            other.rollback()
        finally:
            other.close()
        assert outbox.claim_next() == 1  # released by the other host
        statuses = [item.status for item in OutboxItem.select().order_by(OutboxItem.id)]
        assert statuses == ["sending", "sending"]
    finally:
        close_database()
