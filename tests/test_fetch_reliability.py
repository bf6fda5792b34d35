"""The reliability ``eddymail fetch`` must show against the real Dovecot (issue 3).

Every fetch here is a real child process (``python -m eddymail``), so it can be killed with
SIGKILL or cut off from the server like a cron job on a bad day. The channel's password comes
from a ``--password-command`` (``cat FILE``), so no child ever needs a keyring. After each
fault the tests look at the database itself and at the server: nothing lost, nothing twice.
"""

from __future__ import annotations

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

from eddymail.services.locking import lock_path
from tests.faults import CuttingProxy, append_messages, reaped, run_cli, start_cli
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
    unmarked: int  # imported, but the kill came before the server was told (\\Seen)

    def __str__(self) -> str:
        kind = "blind" if self.blind else "mid-run"
        return (f"{kind} kill after {self.delay:.2f}s: {self.before} -> {self.after} imported, "
                f"{self.unmarked} not yet marked read")


def test_kill_9_at_random_moments_loses_nothing_and_doubles_nothing(
        channel, config_file, dovecot, mail_user, database_path):
    """SIGKILL a fetch of 200 messages over and over until a run gets to the end.

    Half of the kills are blind (a random delay after the start: start-up, login, the first
    connection's bookkeeping, anywhere); the other half wait until the run has committed
    something and then strike after a random short delay, so kills certainly land in the
    middle of the import, some between a commit and the ``\\Seen`` that follows it (small
    batches make those windows many).
    """
    mails = many_mails(200, "kill")
    append_messages(dovecot, mail_user, [raw for _, raw in mails])
    channel()
    config = config_file(batch_size=7)
    rng = random.Random(KILL_SEED)
    kills: list[Kill] = []
    for attempt in range(60):
        before = imported_count(database_path)
        blind = rng.random() < 0.5
        delay = rng.uniform(0.05, 1.2) if blind else rng.uniform(0.0, 0.25)
        process = start_cli("-q", "-c", str(config), "fetch", "--initial", "all")
        with reaped(process):
            if not blind:
                wait_for(lambda before=before: process.poll() is not None
                         or imported_count(database_path) > before, timeout=20)
            try:
                code = process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=30)
                unmarked = query(database_path, "SELECT COUNT(*) FROM ledger_entry WHERE "
                                 "status = 'imported' AND NOT server_done")[0][0]
                kills.append(Kill(blind, delay, before, imported_count(database_path), unmarked))
                continue
            stderr = process.stderr.read().decode() if process.stderr else ""
        assert code == 0, f"attempt {attempt} exited {code}: {stderr}"
        break
    else:
        pytest.fail(f"no run finished in 60 attempts (seed {KILL_SEED}): {kills}")
    mid_run = [kill for kill in kills if kill.after > kill.before]
    print(f"seed {KILL_SEED}: {len(kills)} kills, {len(mid_run)} in the middle of the import; "
          f"attempt {attempt + 1} finished", *kills, sep="\n  ")
    assert len(kills) >= 3, f"too few kills to prove anything: {kills}"
    assert mid_run, f"no kill landed in the middle of the import: {kills}"
    assert any(kill.unmarked for kill in kills), (
        f"no kill landed between a commit and the \\Seen that follows it: {kills}")

    message_ids = [message_id for message_id, _ in mails]
    assert_each_taken_once(database_path, message_ids)
    assert query(database_path, "SELECT COUNT(*) FROM ledger_entry WHERE NOT server_done") == [
        (0,)]
    assert_all_seen(dovecot, mail_user, 200)
    # And a run after all that finds nothing left to do.
    again = run_cli("--json", "fetch")
    assert again.returncode == 0, again.describe()
    assert '"fetched": 0' in again.stdout
