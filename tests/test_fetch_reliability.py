"""The reliability ``eddymail fetch`` must show against the real Dovecot (issue 3).

Every fetch here is a real child process (``python -m eddymail``), so it can be killed with
SIGKILL or cut off from the server like a cron job on a bad day. The channel's password comes
from a ``--password-command`` (``cat FILE``), so no child ever needs a keyring. After each
fault the tests look at the database itself and at the server: nothing lost, nothing twice.
"""

from __future__ import annotations

import json
import random
import shlex
import sqlite3
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock
import pytest

from eddymail.services.fetch.locking import channel_lock_path
from tests.faults import CliRun, CuttingProxy, append_messages, reaped, run_cli, start_cli
from tests.harness.dovecot import DovecotServer, MailUser
from tests.mailfactory import make_mail, poison_mail

SEEN = "\\Seen"
EXIT_CHANNEL_FAILED = 3
EXIT_LOCKED = 75

# Seeds for the random kill moments: a failure names its seed and reproduces with it.
KILL_SEED = 20261127
POP3_KILL_SEED = 3834


# --- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
def channel(support: Callable[..., Any], dovecot: DovecotServer, mail_user: MailUser,
            tmp_path: Path) -> Callable[..., Any]:
    """Adds a channel for the test user whose password comes from ``cat FILE``.

    ``add(name, *options, protocol=, port=)``: ``port`` points the channel at a proxy instead of
    Dovecot's own TLS port. No SMTP server: fetch would try to send the notifications it
    queues, and that is the outbox's business, not what these tests are about.
    """
    password_file = tmp_path / "mail-password"
    password_file.write_text(mail_user.password + "\n")

    def add(name: str = "support", *options: str, protocol: str = "imap",
            port: int | None = None) -> Any:
        if port is None:
            port = dovecot.imaps_port if protocol == "imap" else dovecot.pop3s_port
        return support(
            name, "--email", mail_user.address, "--login", mail_user.login,
            "--protocol", protocol, "--host", "127.0.0.1", "--port", str(port),
            "--security", "ssl", "--ca-file", str(dovecot.pki.ca_file),
            "--password-command", f"cat {shlex.quote(str(password_file))}", *options,
            password=None,
        )

    return add


@pytest.fixture
def config_file(tmp_path: Path) -> Callable[..., Path]:
    """Writes an ``eddymail.toml`` with the given ``[fetch]`` keys; returns its path."""

    def write(**fetch: int) -> Path:
        path = tmp_path / "eddymail.toml"
        path.write_text("[fetch]\n" + "".join(f"{key} = {value}\n"
                                              for key, value in fetch.items()))
        return path

    return write


def many_mails(count: int, prefix: str, *, body_bytes: int = 0) -> list[tuple[str, bytes]]:
    """``count`` distinct small messages as ``(Message-ID, raw)``, from five senders."""
    mails = []
    for number in range(count):
        message_id = f"<{prefix}-{number}@customer.example>"
        sender = f"Customer {number % 5} <customer{number % 5}@customer.example>"
        body = f"Message {number} of {count}.\n" + "x" * body_bytes + "\n"
        mails.append((message_id, make_mail(f"{prefix} {number}", sender=sender, body=body,
                                            message_id=message_id)))
    return mails


def query(database: Path, sql: str, *parameters: Any) -> list[tuple[Any, ...]]:
    """Run one read-only query against the test's SQLite file (the child may be writing)."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()


def imported_count(database: Path) -> int:
    """Ledger rows of mail taken in so far (0 before the schema exists)."""
    try:
        return query(database, "SELECT COUNT(*) FROM ledger_entry WHERE status = 'imported'")[0][0]
    except sqlite3.OperationalError:
        return 0


def assert_each_taken_once(database: Path, message_ids: list[str]) -> None:
    """Exactly these messages are in the database, each once, each in its own ticket."""
    message_ids = [message_id.strip("<>") for message_id in message_ids]  # stored bare
    count = len(message_ids)
    incoming = [row[0] for row in query(
        database, "SELECT message_id FROM message WHERE direction = 'in'")]
    twice = {mid: n for mid, n in Counter(incoming).items() if n > 1}
    assert not twice, f"messages stored more than once: {twice}"
    assert set(incoming) == set(message_ids), (
        f"lost: {sorted(set(message_ids) - set(incoming))[:10]}; "
        f"unexpected: {sorted(set(incoming) - set(message_ids))[:10]}")
    assert query(database, "SELECT COUNT(*) FROM ticket") == [(count,)]
    statuses = dict(query(database, "SELECT status, COUNT(*) FROM ledger_entry GROUP BY status"))
    assert statuses == {"imported": count}, statuses
    ledger_ids = [row[0] for row in query(database, "SELECT message_id FROM ledger_entry")]
    assert sorted(ledger_ids) == sorted(message_ids)
    # A rolled-back transaction takes the users it created with it: one per sender, no more.
    senders = query(database, "SELECT COUNT(DISTINCT from_address) FROM message")[0][0]
    assert query(database, 'SELECT COUNT(*), COUNT(DISTINCT email) FROM "user"') == [
        (senders, senders)]


def assert_all_seen(dovecot: DovecotServer, user: MailUser, count: int) -> None:
    """Every one of the ``count`` messages in INBOX carries ``\\Seen``."""
    stored = dovecot.messages(user)
    assert len(stored) == count
    unread = [message.uid for message in stored if SEEN not in message.flags]
    assert not unread, f"{len(unread)} messages never marked read, UIDs {unread[:10]}"


def channel_report(run: CliRun) -> dict[str, Any]:
    """The one channel report of a ``--json fetch`` run."""
    (report,) = json.loads(run.stdout)["channels"]
    return report


def error_log(database: Path) -> list[tuple[str, str, str]]:
    """``(channel, operation, answer)`` of every error log entry, oldest first."""
    return query(database, "SELECT channel_name, operation, COALESCE(answer, '') "
                           "FROM error_log_entry ORDER BY id")


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return whether it held."""
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        if condition():
            return True
        time.sleep(interval)
    return condition()


# --- 1. kill -9 at random moments ---------------------------------------------------------------


@dataclass(frozen=True)
class Kill:
    """One SIGKILL: blind (at a random delay) or after the run had committed something."""

    blind: bool
    delay: float
    before: int  # messages imported before the killed run started
    after: int  # ... and after it was killed
    untold: int  # imported, but the server was not told yet (\Seen, or DELE + QUIT)

    def __str__(self) -> str:
        kind = "blind" if self.blind else "mid-run"
        return (f"{kind} kill after {self.delay:.2f}s: {self.before} -> {self.after} imported, "
                f"{self.untold} not yet done on the server")


def kill_until_done(args: list[str], database: Path, seed: int) -> list[Kill]:
    """Start ``eddymail ARGS`` and SIGKILL it, again and again, until a run exits by itself.

    Most kills wait until the run has committed something more and then strike after a
    random short delay, so they certainly land in the middle of the import (and, with small
    batches, often between a commit and the server update that follows it). The others are
    blind, at a random delay from the start: start-up, login, the first connection's
    bookkeeping, anywhere. The run that is not killed must exit 0. Prints the kills.
    """
    rng = random.Random(seed)
    kills: list[Kill] = []
    for attempt in range(1, 61):
        before = imported_count(database)
        blind = rng.random() < 0.3
        delay = rng.uniform(0.05, 1.0) if blind else rng.uniform(0.0, 0.1)
        process = start_cli(*args)
        with reaped(process):
            if not blind:
                wait_for(lambda process=process, before=before: process.poll() is not None
                         or imported_count(database) > before, timeout=20)
            try:
                code = process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
                untold = query(database, "SELECT COUNT(*) FROM ledger_entry WHERE "
                                         "status = 'imported' AND NOT server_done")[0][0]
                kills.append(Kill(blind, delay, before, imported_count(database), untold))
                continue
            stderr = process.stderr.read().decode() if process.stderr else ""
        assert code == 0, f"attempt {attempt} (seed {seed}) exited {code}: {stderr}"
        mid_run = sum(kill.after > kill.before for kill in kills)
        print(f"\nseed {seed}: {len(kills)} kills, {mid_run} in the middle of the import; "
              f"attempt {attempt} ran to the end", *kills, sep="\n  ")
        return kills
    pytest.fail(f"no run finished in 60 attempts (seed {seed}): {kills}")


def test_kill_9_at_random_moments_loses_nothing_and_doubles_nothing(
        channel, config_file, dovecot, mail_user, database_path):
    """SIGKILL a fetch of 200 messages over and over until a run gets to the end: every
    message is then a ticket exactly once and marked read on the server."""
    mails = many_mails(200, "kill")
    append_messages(dovecot, mail_user, [raw for _, raw in mails])
    channel()
    # Small batches: many commit-then-\Seen windows for the kills to land in.
    config = config_file(batch_size=7)
    kills = kill_until_done(["-q", "-c", str(config), "fetch", "--initial", "all"],
                            database_path, KILL_SEED)
    assert len(kills) >= 2, f"too few kills to prove anything: {kills}"
    assert any(kill.after > kill.before for kill in kills), (
        f"no kill landed in the middle of the import: {kills}")
    # Whether a random kill also lands in the short gap between a batch's commit and \Seen
    # flag is luck; tests/adversarial/test_crashes.py stops at that very step every time.

    assert_each_taken_once(database_path, [message_id for message_id, _ in mails])
    assert query(database_path, "SELECT COUNT(*) FROM ledger_entry WHERE NOT server_done") == [
        (0,)]
    assert_all_seen(dovecot, mail_user, 200)
    # And a run after all that finds nothing left to do.
    again = run_cli("--json", "fetch")
    assert again.returncode == 0, again.describe()
    assert channel_report(again)["fetched"] == 0


# --- 2. two fetches at once ---------------------------------------------------------------------


def test_fetch_while_another_holds_the_lock_exits_75_and_takes_nothing(
        channel, dovecot, mail_user, database_path):
    """A cron run that overlaps a running one stops at once: code 75, silent under ``-q``."""
    channel()
    dovecot.deliver(mail_user, make_mail("waiting for the running fetch"))
    lock_path = channel_lock_path(f"sqlite:///{database_path}", 1)
    lock_path.parent.mkdir(parents=True, exist_ok=True)  # (filelock < 3.12.3 does not)
    with filelock.FileLock(str(lock_path), timeout=0):
        quiet = run_cli("-q", "fetch")
        assert quiet.returncode == EXIT_LOCKED, quiet.describe()
        assert quiet.stdout == "" and quiet.stderr == ""
        loud = run_cli("fetch")
        assert loud.returncode == EXIT_LOCKED, loud.describe()
        assert "Another eddymail fetch is running" in loud.stderr
    assert query(database_path, "SELECT COUNT(*) FROM ledger_entry") == [(0,)]
    assert [message.flags for message in dovecot.messages(mail_user)] == [set()]
    after = run_cli("-q", "fetch")  # the lock is free again: the mail is taken now
    assert after.returncode == 0, after.describe()
    assert query(database_path, "SELECT COUNT(*) FROM ticket") == [(1,)]


def test_two_fetches_started_together_one_runs_one_exits_75_nothing_doubled(
        channel, dovecot, mail_user, database_path, tmp_path):
    """Two real processes started at the same instant over the same mailbox.

    The password command sleeps two seconds, and it runs while the fetch lock is held, so the
    winner is certainly still busy when the loser asks for the lock: the overlap does not
    depend on how fast the machine is.
    """
    mails = many_mails(100, "together")
    append_messages(dovecot, mail_user, [raw for _, raw in mails])
    password_file = tmp_path / "slow-password"
    password_file.write_text(mail_user.password + "\n")
    channel("support", "--password-command",
            shlex.join(["sh", "-c", f"sleep 2; cat {shlex.quote(str(password_file))}"]))
    first = start_cli("-q", "fetch", "--initial", "all")
    second = start_cli("-q", "fetch", "--initial", "all")
    with reaped(first), reaped(second):
        codes = sorted([first.wait(timeout=60), second.wait(timeout=60)])
        stderr = [p.stderr.read().decode() for p in (first, second) if p.stderr]
    assert codes == [0, EXIT_LOCKED], f"exit codes {codes}; stderr: {stderr}"
    assert stderr == ["", ""]  # -q: the loser says nothing either
    assert_each_taken_once(database_path, [message_id for message_id, _ in mails])
    assert_all_seen(dovecot, mail_user, 100)


# --- 3. mail read in webmail before the fetch ----------------------------------------------------


def test_mail_read_in_webmail_before_the_fetch_is_still_taken(channel, dovecot, mail_user,
                                                               database_path):
    """Someone opens the new mail on the phone (another IMAP session sets ``\\Seen``) before
    cron's fetch comes round: the ticket is still made, once."""
    channel()
    first = run_cli("-q", "fetch")  # first connection, empty mailbox: the baseline
    assert first.returncode == 0, first.describe()
    read_uid = dovecot.deliver(mail_user, make_mail("read on the phone",
                                                    message_id="<phone@customer.example>"))
    dovecot.deliver(mail_user, make_mail("nobody read this",
                                         message_id="<unread@customer.example>"))
    dovecot.mark_seen(mail_user, [read_uid])
    assert SEEN in dovecot.messages(mail_user)[0].flags

    fetched = run_cli("--json", "fetch")
    assert fetched.returncode == 0, fetched.describe()
    assert channel_report(fetched)["new_tickets"] == 2
    assert_each_taken_once(database_path, ["<phone@customer.example>",
                                           "<unread@customer.example>"])
    assert_all_seen(dovecot, mail_user, 2)
    again = run_cli("--json", "fetch")
    assert channel_report(again)["fetched"] == 0


# --- 4. a connection cut in the middle of a fetch ----------------------------------------------


@pytest.mark.parametrize(("cut_after", "progress_expected"), [
    pytest.param(300, False, id="in-the-TLS-handshake"),
    pytest.param(60_000, True, id="in-the-middle-of-the-download"),
])
def test_connection_cut_mid_fetch_next_run_completes(channel, config_file, dovecot, mail_user,
                                                    database_path, cut_after,
                                                    progress_expected):
    """A proxy between eddymail and Dovecot drops the connection after ``cut_after`` bytes
    from the server. That run fails for this channel (exit 3, the error logged); the next
    run, with the line healthy again, takes the rest: nothing lost, nothing twice."""
    count = 60
    mails = many_mails(count, f"cut{cut_after}", body_bytes=1500)
    append_messages(dovecot, mail_user, [raw for _, raw in mails])
    config = config_file(batch_size=10)
    with CuttingProxy("127.0.0.1", dovecot.imaps_port) as proxy:
        channel("support", port=proxy.port)
        proxy.cut_after_server_bytes = cut_after
        cut = run_cli("-q", "-c", str(config), "fetch", "--initial", "all")
        assert cut.returncode == EXIT_CHANNEL_FAILED, cut.describe()
        assert proxy.cuts == 1
        errors = [line for line in cut.stderr.splitlines() if line.startswith("Error")]
        assert len(errors) == 1 and errors[0].startswith("Error: support:"), cut.stderr
        logged = error_log(database_path)
        assert [(name, operation.split()[0]) for name, operation, _ in logged] == [
            ("support", "imap")], logged
        taken = imported_count(database_path)
        if progress_expected:
            assert 0 < taken < count, f"the cut should land mid-download, {taken} were taken"
        else:
            assert taken == 0

        proxy.cut_after_server_bytes = None
        healed = run_cli("-q", "-c", str(config), "fetch")
        assert healed.returncode == 0, healed.describe()
    assert_each_taken_once(database_path, [message_id for message_id, _ in mails])
    assert_all_seen(dovecot, mail_user, count)


# --- 5. POP3 with delete-after-import, interrupted before QUIT -----------------------------------


def test_pop3_delete_cut_just_before_quit_keeps_mail_and_next_run_deletes_it(
        channel, dovecot, mail_user, database_path):
    """The connection drops exactly when the client sends QUIT, after every RETR and DELE.

    POP3 commits deletions only at QUIT, so the server keeps every message; eddymail has
    them all stored. The next run must not import them again, and must delete them.
    """
    count = 12
    mails = many_mails(count, "popquit")
    append_messages(dovecot, mail_user, [raw for _, raw in mails])
    with CuttingProxy("127.0.0.1", dovecot.pop3s_port) as proxy:
        channel("pop", "--after-fetch", "delete", protocol="pop3", port=proxy.port)
        # The client's TLS application records: Finished (TLS 1.3), USER, PASS, UIDL, LIST,
        # RETR x count, DELE x count, QUIT. The proxy swallows QUIT and hangs up.
        proxy.cut_at_client_record = 5 + 2 * count + 1
        cut = run_cli("-q", "fetch", "--initial", "all")
        assert cut.returncode == EXIT_CHANNEL_FAILED, cut.describe()
        assert proxy.cuts == 1
        assert [(name, operation) for name, operation, _ in error_log(database_path)] == [
            ("pop", "pop3 quit")], "the cut should hit QUIT (see the record count above)"
        assert imported_count(database_path) == count
        assert len(dovecot.messages(mail_user)) == count  # no QUIT, no deletion

        proxy.cut_at_client_record = None
        healed = run_cli("--json", "fetch")
        assert healed.returncode == 0, healed.describe()
        assert channel_report(healed)["fetched"] == 0
    assert_each_taken_once(database_path, [message_id for message_id, _ in mails])
    assert dovecot.messages(mail_user) == []
    assert query(database_path, "SELECT COUNT(*) FROM ledger_entry WHERE NOT server_done") == [
        (0,)]


def test_pop3_delete_killed_at_random_moments_loses_nothing_and_doubles_nothing(
        channel, dovecot, mail_user, database_path):
    """SIGKILL a POP3 delete-after-import fetch until one run finishes, then check that all
    mail was imported once and is gone from the server."""
    count = 120
    mails = many_mails(count, "popkill")
    append_messages(dovecot, mail_user, [raw for _, raw in mails])
    channel("pop", "--after-fetch", "delete", protocol="pop3")
    kills = kill_until_done(["-q", "fetch", "--initial", "all"], database_path, POP3_KILL_SEED)
    assert any(kill.after > kill.before for kill in kills), (
        f"no kill landed in the middle of the import: {kills}")
    # Every kill came before QUIT (or after it, with the deletions done): nothing was lost.
    assert_each_taken_once(database_path, [message_id for message_id, _ in mails])
    assert dovecot.messages(mail_user) == []


# --- 6. poison between good mail -----------------------------------------------------------------


def nested_rfc822_bomb(depth: int = 500) -> bytes:
    """A message wrapping a message wrapping a message... ``depth`` times."""
    layers = [f"From: bomb@evil.example\r\nSubject: {'nested rfc822' if level == 0 else level}"
              "\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n"
              for level in range(depth)]
    return "".join(layers).encode() + b"From: bomb@evil.example\r\nSubject: core\r\n\r\nboom\r\n"


def many_parts_bomb(parts: int = 20_000) -> bytes:
    """A multipart with ``parts`` tiny parts."""
    head = (b"From: bomb@evil.example\r\nSubject: many parts\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="p"\r\n\r\n')
    return head + b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n" * parts + b"--p--\r\n"


def odd_mail(subject: str, content_type: str, body: bytes, *, extra: str = "") -> bytes:
    """A hand-made single-part message: headers written as given, body as bytes."""
    head = (f"From: Olga <olga@customer.example>\r\nTo: help@example.test\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '-')}@customer.example>"
            f"\r\nMIME-Version: 1.0\r\nContent-Type: {content_type}\r\n{extra}\r\n")
    return head.encode() + body


# Broken, but with readable text in them: these must become tickets with that text.
READABLE_ODDITIES = {
    "unknown charset": (
        odd_mail("unknown charset", 'text/plain; charset="x-martian-7"',
                 "Принтер не печатает, помогите.\r\n".encode("koi8-r"),
                 extra="Content-Transfer-Encoding: 8bit\r\n"),
        "Принтер не печатает, помогите.",
    ),
    "no end boundary": (
        odd_mail("no end boundary", 'multipart/mixed; boundary="XYZ"',
                 b"--XYZ\r\nContent-Type: text/plain\r\n\r\nThe body before the cut.\r\n"),
        "The body before the cut.",
    ),
    "no boundary parameter": (
        odd_mail("no boundary parameter", "multipart/mixed",
                 b"--XYZ\r\nContent-Type: text/plain\r\n\r\nA multipart naming no boundary."
                 b"\r\n--XYZ--\r\n"),
        "A multipart naming no boundary.",
    ),
    "unknown transfer encoding": (
        odd_mail("unknown transfer encoding", "text/plain; charset=utf-8",
                 b"Plain words here.\r\n", extra="Content-Transfer-Encoding: x-martian\r\n"),
        "Plain words here.",
    ),
}

# Built to exhaust the parser: these must be quarantined with their bytes.
POISON = {
    "nested": (poison_mail(), "nest"),
    "nested rfc822": (nested_rfc822_bomb(), "nest"),
    "many parts": (many_parts_bomb(), "parts"),
}


def test_poison_between_good_mail_is_quarantined_and_odd_mail_is_read(
        channel, dovecot, mail_user, database_path):
    """Good mail, parser bombs and merely broken mail, interleaved, in one fetch.

    The good and the merely broken messages (unknown charset, missing boundaries, an unknown
    transfer encoding) become tickets with readable text; the bombs are quarantined with
    their exact bytes and an error that says why; the run goes on and succeeds.
    """
    channel()
    assert run_cli("-q", "fetch").returncode == 0
    good = many_mails(len(POISON) + len(READABLE_ODDITIES) + 1, "good")
    odd = list(READABLE_ODDITIES.items()) + list(POISON.items())
    deliveries = [good[0][1]]
    for (_, raw), (_, good_raw) in zip(odd, good[1:], strict=True):
        deliveries += [raw[0], good_raw]
    append_messages(dovecot, mail_user, deliveries)

    result = run_cli("--json", "fetch")
    assert result.returncode == 0, result.describe()
    report = channel_report(result)
    assert report["ok"] is True
    assert (report["new_tickets"], report["quarantined"]) == (
        len(good) + len(READABLE_ODDITIES), len(POISON))

    bodies = dict(query(database_path, "SELECT subject, body_text FROM message"))
    for subject, (_, text) in READABLE_ODDITIES.items():
        assert text in bodies[subject], (subject, bodies[subject])
    assert {f"good {number}" for number in range(len(good))} <= set(bodies)

    quarantined = query(database_path,
                        "SELECT r.data, l.error FROM ledger_entry l JOIN raw_message r "
                        "ON r.id = l.raw_id WHERE l.status = 'quarantined'")
    on_server = {message.raw for message in dovecot.messages(mail_user)}
    assert len(quarantined) == len(POISON)
    for name, (raw, reason) in POISON.items():
        crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        assert crlf in on_server
        (error,) = [error for data, error in quarantined if data == crlf] or [None]
        assert error is not None, f"{name}: quarantined bytes differ from what was delivered"
        assert reason in error.lower(), (name, error)
    assert len([entry for entry in error_log(database_path) if entry[1] == "parse message"]
               ) == len(POISON)
    assert_all_seen(dovecot, mail_user, len(deliveries))


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_oversized_mail_is_not_deleted_from_the_server(channel, config_file, dovecot,
                                                        mail_user, database_path, protocol):
    """A message over ``max_message_bytes`` is quarantined with its headers only: its body
    exists nowhere but on the server, so delete-after-import must leave it there."""
    config = config_file(max_message_bytes=4000)
    channel("support", "--after-fetch", "delete", protocol=protocol)
    assert run_cli("-q", "-c", str(config), "fetch").returncode == 0
    append_messages(dovecot, mail_user, [
        make_mail("too big", body="x" * 10_000 + "\n", message_id="<big@customer.example>"),
        make_mail("small", message_id="<small@customer.example>"),
    ])
    # The second run finishes what the first left to the server. The first quarantined a
    # message: under -q it says so and exits 3 (issue 11, class 13).
    for expected in (3, 0):
        result = run_cli("-q", "-c", str(config), "fetch")
        assert result.returncode == expected, result.describe()
    assert query(database_path, "SELECT l.status, r.headers_only FROM ledger_entry l "
                                "JOIN raw_message r ON r.id = l.raw_id ORDER BY l.id") == [
        ("quarantined", 1), ("imported", 0)]
    left = [message.raw for message in dovecot.messages(mail_user)]
    assert len(left) == 1 and b"Subject: too big" in left[0], (
        "the oversized message, of which eddymail kept only the headers, was deleted")
