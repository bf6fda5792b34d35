"""A crash at every step of a fetch, each followed by a normal run, ends where no crash would.

For each scenario an uninterrupted reference run (``EDDYMAIL_CRASH_LOG``) names every crash
point a fetch passes. Then, for every k, a fresh mailbox and database get a run with
``EDDYMAIL_CRASH_AT=k`` (it must die at step k with exit 86) and a normal run after it; one
more k past the last point must run to the end. The database (tickets, messages, users,
ledger statuses, raw mail, outbox) and the mailbox (flags, moved, deleted) must then equal
the reference. The trials are independent, so they run a few at a time.
"""

from __future__ import annotations

import re
import shlex
import sqlite3
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from eddymail.crashpoints import CRASH_ENV, CRASH_EXIT_CODE, CRASH_LOG_ENV
from tests.adversarial.scripted_servers import ImapServer, ScriptedServer
from tests.faults import CliRun, append_messages, run_cli
from tests.harness.dovecot import DovecotServer, MailUser
from tests.mailfactory import make_mail

PARALLEL_TRIALS = 3


@dataclass(frozen=True)
class Scenario:
    """One way of fetching: protocol, after-fetch action, mail count, notifications sent."""

    protocol: str
    after_fetch: str
    messages: int
    notify: bool = False

    @property
    def expected_points(self) -> set[str]:
        """The step names every k must get to see."""
        if self.protocol == "pop3":
            return {"pop3 connected", "pop3 downloaded", "ingest stored", "pop3 committed",
                    "pop3 dele sent", "pop3 quit"}
        points = {"imap connected", "imap downloaded", "ingest stored", "imap stored",
                  "imap committed", "imap server told", "imap flagged"}
        if self.after_fetch == "delete":
            points.add("imap deleted flag set")
        if self.notify:
            points.update({"outbox claimed", "outbox data started", "outbox accepted"})
        return points


SCENARIOS = {
    "imap-mark-read-with-notification": Scenario("imap", "mark_read", 1, notify=True),
    "imap-move": Scenario("imap", "move", 2),  # two batches: a crash between them too
    "imap-delete": Scenario("imap", "delete", 1),
    "pop3-delete": Scenario("pop3", "delete", 2),
}


@dataclass
class Trial:
    """One fresh mailbox and database."""

    label: str
    user: MailUser
    database: Path
    config: Path
    runs: list[CliRun]

    @property
    def environment(self) -> dict[str, str]:
        """What the child needs to use this trial's database."""
        return {"EDDYMAIL_DATABASE_URL": f"sqlite:///{self.database}"}


def mails(count: int) -> list[bytes]:
    """``count`` messages, each a new ticket, all from one new customer."""
    return [make_mail(f"crash test {number}", body=f"Message {number}.\n",
                      sender="Customer <customer@customer.example>",
                      message_id=f"<crash-{number}@customer.example>")
            for number in range(1, count + 1)]


class Trials:
    """Makes trials: a mail user with the scenario's mail, and a database with its channel."""

    def __init__(self, eddymail: Any, monkeypatch: pytest.MonkeyPatch, dovecot: DovecotServer,
                 smtp_server: Any, tmp_path: Path, scenario: Scenario) -> None:
        self.eddymail = eddymail
        self.monkeypatch = monkeypatch
        self.dovecot = dovecot
        self.smtp_server = smtp_server
        self.tmp_path = tmp_path
        self.scenario = scenario
        self.config = tmp_path / "eddymail.toml"
        # One message per FETCH: every message gets its own commit-then-flag window.
        self.config.write_text("[fetch]\nbatch_size = 1\n")
        # Made once: every trial must receive exactly the same bytes (make_mail varies Date).
        self.mails = mails(scenario.messages)

    def make(self, label: str) -> Trial:
        """Set a trial up (in this process: the CLI, against the trial's own database)."""
        scenario = self.scenario
        dovecot = self.dovecot
        user = dovecot.create_user()
        database = self.tmp_path / f"{label}.db"
        self.monkeypatch.setenv("EDDYMAIL_DATABASE_URL", f"sqlite:///{database}")
        password_file = self.tmp_path / f"{label}.password"
        password_file.write_text(user.password + "\n")
        port = dovecot.imaps_port if scenario.protocol == "imap" else dovecot.pop3s_port
        options = ["--email", user.address, "--login", user.login,
                   "--protocol", scenario.protocol, "--host", dovecot.host, "--port", str(port),
                   "--security", "ssl", "--ca-file", str(dovecot.pki.ca_file),
                   "--password-command", f"cat {shlex.quote(str(password_file))}",
                   "--after-fetch", scenario.after_fetch, "--initial", "all",
                   # the first fetch records the starting point, so it can crash there too
                   "--no-connect"]
        if scenario.after_fetch == "move":
            options += ["--move-to", "Processed"]
        if scenario.notify:
            options += ["--smtp-host", self.smtp_server.host,
                        "--smtp-port", str(self.smtp_server.port), "--smtp-security", "starttls"]
            self.smtp_server.add_user(user.login, user.password)
        self.eddymail("department", "add", "Support")
        self.eddymail("channel", "add", "support", "--department", "Support", *options)
        if scenario.notify:
            self.eddymail("settings", "set", "system-channel", "support")
        append_messages(dovecot, user, self.mails)
        return Trial(label, user, database, self.config, [])

    def fetch(self, trial: Trial, **environment: str) -> CliRun:
        """Run ``eddymail fetch`` for the trial as a child process."""
        run = run_cli("-q", "-c", str(trial.config), "fetch",
                      env={**trial.environment, **environment})
        trial.runs.append(run)
        return run


def query(database: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows of a read-only query."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def snapshot(trial: Trial, dovecot: DovecotServer, scenario: Scenario) -> dict[str, Any]:
    """The end state that must not depend on where a run crashed.

    Row ids of tickets and messages are included (they are the ticket numbers customers
    see); UIDVALIDITY, UIDLs and times are not (every trial has its own mailbox and clock).
    """
    database = trial.database
    state: dict[str, Any] = {
        "tickets": query(database, "SELECT id, subject, status, requester_address, "
                                   "message_count, awaiting_reply FROM ticket ORDER BY id"),
        "messages": query(database, "SELECT id, ticket_id, direction, subject, message_id, "
                                    "from_address, body_text FROM message ORDER BY id"),
        "users": query(database, 'SELECT email FROM "user" ORDER BY email'),
        # Not the UIDL itself: Dovecot builds it from the mailbox's UIDVALIDITY.
        "ledger": query(database, "SELECT source, folder, uid, uidl IS NULL, sha256, status, "
                                  "server_done, message_id, error FROM ledger_entry "
                                  "ORDER BY uid, sha256"),
        "raw": query(database, "SELECT sha256, size, headers_only FROM raw_message "
                               "ORDER BY sha256"),
        "cursor": query(database, "SELECT folder, baseline_uid FROM channel_cursor"),
        "outbox": query(database, "SELECT kind, template, recipients, status, attempts "
                                  "FROM outbox_item ORDER BY id"),
        "quarantined": query(database, "SELECT COUNT(*) FROM ledger_entry "
                                       "WHERE status = 'quarantined'"),
    }
    folders = ["INBOX"] + (["Processed"] if scenario.after_fetch == "move" else [])
    for folder in folders:
        if folder != "INBOX" and folder not in dovecot.folder_names(trial.user):
            state[f"mailbox {folder}"] = "missing"
            continue
        state[f"mailbox {folder}"] = sorted(
            (message.raw.split(b"\r\n\r\n")[0].split(b"Subject: ")[1].split(b"\r\n")[0],
             sorted(message.flags))
            for message in dovecot.messages(trial.user, folder))
    return state


def crash_names(log: Path) -> list[str]:
    """The crash points one run passed, in order (``EDDYMAIL_CRASH_LOG``)."""
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines()]


def letters_from(smtp_server: Any, address: str) -> Counter[tuple[str, ...]]:
    """How many letters the SMTP server accepted from ``address``, by recipients and ticket."""
    return Counter(
        (*mail.rcpt_tos, *re.findall(rb"X-Eddymail-Ticket: (\d+)", mail.data))
        for mail in smtp_server.received if mail.mail_from == address)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_crash_at_every_step_then_a_normal_run_ends_as_if_nothing_happened(
        eddymail, monkeypatch, dovecot, smtp_server, tmp_path, name):
    """Kill the fetch at step k, for every k, then run it normally: the same tickets,
    messages, ledger, outbox and mailbox as one uninterrupted run; no mail lost or doubled."""
    scenario = SCENARIOS[name]
    trials = Trials(eddymail, monkeypatch, dovecot, smtp_server, tmp_path, scenario)

    reference = trials.make("reference")
    log = tmp_path / "crash-points.log"
    done = trials.fetch(reference, **{CRASH_LOG_ENV: str(log)})
    assert done.returncode == 0, done.describe()
    steps = crash_names(log)
    assert set(steps) == scenario.expected_points, steps
    expected = snapshot(reference, dovecot, scenario)
    imported = [row for row in expected["ledger"] if row[5] == "imported"]
    assert len(imported) == scenario.messages and all(row[6] for row in imported), expected
    if scenario.notify:
        assert [row[3] for row in expected["outbox"]] == ["sent"] * scenario.messages
        assert sum(letters_from(smtp_server, reference.user.address).values()) == (
            scenario.messages)

    # k = len(steps) + 1 is past the last step: that run must simply finish.
    crashed = [trials.make(f"k{k}") for k in range(1, len(steps) + 2)]

    def crash_then_recover(k: int, trial: Trial) -> None:
        first = trials.fetch(trial, **{CRASH_ENV: str(k)})
        if k > len(steps):
            assert first.returncode == 0, first.describe()
            return
        assert first.returncode == CRASH_EXIT_CODE, f"k={k}: {first.describe()}"
        assert f"({steps[k - 1]})" in first.stderr, first.stderr
        second = trials.fetch(trial)
        assert second.returncode == 0, f"after a crash at {k} ({steps[k - 1]}): " + (
            second.describe())
        if steps[k - 1] in ("outbox claimed", "outbox data started"):
            # The next run leaves a fresh claim alone (five minutes), and one whose DATA may
            # have begun for an hour. Later (the row aged by hand) it is sent, once: the
            # server never had it.
            with sqlite3.connect(trial.database) as connection:
                connection.execute("UPDATE outbox_item SET data_started_at = "
                                   "datetime(data_started_at, '-2 hours'), next_attempt_at = "
                                   "datetime(next_attempt_at, '-2 hours') "
                                   "WHERE status = 'sending'")
            later = trials.fetch(trial)
            assert later.returncode == 0, later.describe()

    with ThreadPoolExecutor(max_workers=PARALLEL_TRIALS) as pool:
        for future in [pool.submit(crash_then_recover, k, trial)
                       for k, trial in enumerate(crashed, start=1)]:
            future.result()

    for k, trial in enumerate(crashed, start=1):
        step = steps[k - 1] if k <= len(steps) else "no crash"
        state = snapshot(trial, dovecot, scenario)
        if step == "outbox accepted":
            # The server took the mail, the process died before noting it: the row stays
            # claimed ("sending", retried only after the stale-claim interval), never lost.
            claimed = [row for row in state["outbox"] if row[3] == "sending"]
            assert len(claimed) == 1 and claimed[0][4] == 0, state["outbox"]
            state["outbox"] = [(*row[:3], "sent", 1) if row[3] == "sending" else row
                               for row in state["outbox"]]
        if step == "outbox data started":
            # Sent by the third run; the interrupted attempt is counted too.
            assert [row[3:] for row in state["outbox"] if row[1] == "registration"] == [
                ("sent", 2)], state["outbox"]
            state["outbox"] = [(*row[:4], 1) if row[1] == "registration" else row
                               for row in state["outbox"]]
        assert state == expected, f"crash at step {k} ({step}) left a different end state"
        if scenario.notify:
            letters = letters_from(smtp_server, trial.user.address)
            # Each notification delivered exactly once: not lost, not twice.
            assert sorted(letters.values()) == [1] * scenario.messages, (k, step, letters)


class ImapWithoutMove(ImapServer):
    """A server without the MOVE extension: a move is COPY, \\Deleted, EXPUNGE."""

    capabilities = "IMAP4rev1 AUTH=PLAIN UIDPLUS"


def test_move_without_the_move_extension_never_leaves_two_copies(support, database_path):
    """Killed after COPY and \\Deleted but before EXPUNGE, the next run finishes the move by
    expunging; copying the message a second time would leave it twice in the target folder."""
    mail = make_mail("moved once", message_id="<moved-once@customer.example>")
    handler = ImapWithoutMove([mail])
    with ScriptedServer(handler) as server:
        support("support", "--email", "help@example.test", "--login", "agent",
                "--protocol", "imap", "--host", server.host, "--port", str(server.port),
                "--security", "none", "--initial", "all", "--no-connect", "--after-fetch", "move",
                "--move-to", "Processed", "--password-command", "echo scripted-secret",
                password=None)
        crashed = run_cli("-q", "fetch", env={CRASH_ENV: "imap deleted flag set"})
        assert crashed.returncode == CRASH_EXIT_CODE, crashed.describe()
        assert handler.folders == {"Processed": [mail]}
        assert handler.flags == {1: {"\\Deleted"}}  # copied, flagged, not yet expunged
        recovered = run_cli("-q", "fetch")
        assert recovered.returncode == 0, recovered.describe()
    assert handler.folders == {"Processed": [mail]}, "the message was copied twice"
    assert handler.messages == {}
    assert query(database_path, "SELECT status, server_done FROM ledger_entry") == [
        ("imported", 1)]
