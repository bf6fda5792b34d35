"""Hostile and broken mail servers: a fetch ends in time, within its memory, loses nothing.

Scripted loopback servers (``scripted_servers``) play the faults a real server will not
produce on demand: silence, a TLS upgrade that never completes, answers that never end, a
literal of gigabytes, garbage where a protocol answer belongs, FETCH answers that leave
messages out. Where the run must prove it stayed small or ended by itself, it is a real
child process; elsewhere the CLI runs in-process, next to a healthy channel on the real
Dovecot that must still get its mail in the same run.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock
import pytest

from eddymail.errors import MailServerError
from eddymail.mail.wire.endpoint import Endpoint
from eddymail.mail.wire.smtp import SmtpClient
from eddymail.services.fetch.locking import lock_directory
from tests.adversarial.scripted_servers import (
    Connection,
    ImapServer,
    Pop3Server,
    ScriptedServer,
    silent,
)
from tests.faults import REPO_ROOT, cli_command, cli_environment
from tests.harness.dovecot import DovecotServer, MailUser
from tests.mailfactory import make_mail

EXIT_CHANNEL_FAILED = 3
SEEN = "\\Seen"
# How many lines an "endless" server sends, one every 50 ms (20 s at least), before it
# gives up and hangs up: far past any deadline here, so a client cut at its deadline never
# sees the end, and a client without a deadline gets "closed the connection" instead.
ENDLESS_LINES = 400
# A child still running after this long has hung: it is killed, and its exit code fails
# the test. A guard against a hung suite, not a speed limit: every server here runs out of
# things to say long before.
HANG_GUARD_SECONDS = 300


# --- helpers ----------------------------------------------------------------------------------


def write_config(path: Path, *, timeout: float = 1, deadline: float = 20,
                 max_message_bytes: int | None = None) -> Path:
    """An ``eddymail.toml`` with short network limits."""
    text = f"[network]\ntimeout = {timeout}\n[fetch]\ndeadline = {deadline}\n"
    if max_message_bytes is not None:
        text += f"max_message_bytes = {max_message_bytes}\n"
    path.write_text(text)
    return path


def scripted_channel(support: Callable[..., Any], name: str, server: ScriptedServer,
                     protocol: str = "imap", *options: str) -> None:
    """A channel on a scripted server; the password comes from a command, so child
    processes need no keyring."""
    support(name, "--email", f"{name}@example.test", "--login", "agent", "--protocol", protocol,
            "--host", server.host, "--port", str(server.port), "--security", "none",
            "--initial", "all", "--no-connect", "--password-command", "echo scripted-secret",
            *options, password=None)


@pytest.fixture
def healthy(support, dovecot: DovecotServer, mail_user: MailUser) -> Callable[[], None]:
    """Adds ``z-healthy``, a channel on the real Dovecot holding one unread message; fetched
    after the hostile channels (channels run in name order)."""

    def add() -> None:
        dovecot.deliver(mail_user, make_mail("healthy mail", message_id="<ok@customer.example>"))
        support("z-healthy", "--email", mail_user.address, "--login", mail_user.login,
                "--protocol", "imap", "--host", dovecot.host, "--port", str(dovecot.imaps_port),
                "--security", "ssl", "--ca-file", str(dovecot.pki.ca_file), "--initial", "all",
                password=mail_user.password)

    return add


def assert_healthy_channel_fetched(eddymail, dovecot: DovecotServer, user: MailUser) -> None:
    """The Dovecot channel's message became a ticket and was marked read."""
    subjects = [ticket["subject"] for ticket in eddymail.json("ticket", "list")["tickets"]]
    assert "healthy mail" in subjects
    assert [SEEN in message.flags for message in dovecot.messages(user)] == [True]


def assert_clean_channel_failure(result, name: str) -> None:
    """Exit 3, one ``Error: NAME: ...`` line for the channel, no traceback, no bug report."""
    assert result.exit_code == EXIT_CHANNEL_FAILED, (result.exit_code, result.output)
    text = result.output + result.stderr
    assert f"Error: {name}:" in result.stderr, result.stderr
    assert "Traceback" not in text and "Unexpected" not in text, text


@dataclass
class ChildRun:
    """A finished child ``eddymail`` and what it cost."""

    returncode: int
    stdout: str
    stderr: str
    max_rss_bytes: int
    hung: bool = False

    def describe(self) -> str:
        """Everything the child said, for assertion messages."""
        hung = f" (killed: still running after {HANG_GUARD_SECONDS} s)" if self.hung else ""
        return (f"exit {self.returncode}{hung}, max RSS {self.max_rss_bytes >> 20} MiB\n"
                f"stdout: {self.stdout}\nstderr: {self.stderr}")


def run_child(*args: str, address_space: int | None = None) -> ChildRun:
    """Run ``eddymail ARGS`` as a child process; measure its peak memory."""
    return run_measured(cli_command(*args), address_space=address_space)


def run_measured(argv: list[str], *, address_space: int | None = None) -> ChildRun:
    """Run ``argv`` with the test environment; its own peak RSS comes from ``wait4``.

    ``address_space`` caps the child's virtual memory (RLIMIT_AS), so an attempt to allocate
    gigabytes fails at once instead of swapping the test machine to death.
    """

    def limit() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            argv, env=cli_environment(), cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
            stdout=stdout, stderr=stderr, preexec_fn=limit,
        )
        hung = threading.Event()

        def kill_hung_child() -> None:
            hung.set()
            process.kill()  # by its Popen: our own child, not reaped yet

        guard = threading.Timer(HANG_GUARD_SECONDS, kill_hung_child)
        guard.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            guard.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        stdout.seek(0)
        stderr.seek(0)
        return ChildRun(process.returncode, stdout.read().decode(), stderr.read().decode(),
                        usage.ru_maxrss * 1024, hung=hung.is_set())


# --- 1. silence, hung STARTTLS, endless answers: the deadline holds --------------------------


def starttls_that_hangs(protocol: str, pki) -> Callable[[Connection], None]:
    """Accepts STARTTLS/STLS, then never starts the handshake."""
    if protocol == "imap":

        class Hanging(ImapServer):
            def do_STARTTLS(self, connection, tag, arguments):
                connection.send(tag + b" OK Begin TLS negotiation now\r\n")
                connection.wait_for_hangup()
                return False

        return Hanging(starttls=pki.server_context())

    class HangingPop3(Pop3Server):
        def do_STLS(self, connection, arguments):
            connection.send(b"+OK Begin TLS\r\n")
            connection.wait_for_hangup()
            return False

    return HangingPop3(stls=pki.server_context())


class EndlessSelect(ImapServer):
    """Answers SELECT with untagged lines, one every 50 ms, ``ENDLESS_LINES`` of them, then
    hangs up: never a socket timeout. ``sent`` counts the lines the client let it send."""

    sent = 0

    def do_SELECT(self, connection, tag, arguments):
        for number in range(ENDLESS_LINES):
            connection.send(b"* OK still counting %d\r\n" % number)
            self.sent += 1
            time.sleep(0.05)
        return False


class EndlessUidl(Pop3Server):
    """Answers UIDL with a valid line every 50 ms, ``ENDLESS_LINES`` of them, and never the
    final dot; then hangs up."""

    sent = 0

    def do_UIDL(self, connection, arguments):
        connection.send(b"+OK\r\n")
        for number in range(1, ENDLESS_LINES + 1):
            connection.send(b"%d uid-%d\r\n" % (number, number))
            self.sent += 1
            time.sleep(0.05)
        return False


def test_silent_and_hung_servers_time_out_and_the_run_keeps_its_deadline(
        support, pki, tmp_path, database_path):
    """Five hostile channels in one cron run: one never speaks, one never answers the TLS
    handshake, two accept STARTTLS and then stall, one talks without end. Each step times
    out after 1 s and the run ends at its 4 s deadline: exit 3, every channel's failure
    logged, the fetch lock released for the next run. Nothing here is timed: each error
    says which limit ended its channel, and the servers give up (hang up) long after the
    client should have, so a limit that stopped working changes an error, not a duration."""
    config = write_config(tmp_path / "eddymail.toml", timeout=1, deadline=4)
    servers = {
        "a-silent": (ScriptedServer(silent), "imap", "none"),
        "b-silent-tls": (ScriptedServer(silent), "imap", "ssl"),
        "c-imap-starttls-hangs": (ScriptedServer(starttls_that_hangs("imap", pki)), "imap",
                                  "starttls"),
        "d-pop3-stls-hangs": (ScriptedServer(starttls_that_hangs("pop3", pki)), "pop3",
                              "starttls"),
        "e-endless-answer": (ScriptedServer(endless := EndlessSelect()), "imap", "none"),
    }
    try:
        for name, (server, protocol, security) in servers.items():
            support(name, "--email", f"{name}@example.test", "--login", "agent",
                    "--protocol", protocol, "--host", server.host, "--port", str(server.port),
                    "--security", security, "--ca-file", str(pki.ca_file),
                    "--password-command", "echo never-sent", password=None)
        run = run_child("-c", str(config), "--json", "fetch")
        transcripts = {name: server.transcript for name, (server, _, _) in servers.items()}
    finally:
        for server, _, _ in servers.values():
            server.close()
    assert run.returncode == EXIT_CHANNEL_FAILED, run.describe()
    reports = {report["name"]: report for report in json.loads(run.stdout)["channels"]}
    assert not any(report["ok"] for report in reports.values()), reports
    assert "no answer within 1 second" in reports["a-silent"]["error"]
    for name in ("c-imap-starttls-hangs", "d-pop3-stls-hangs"):
        error = reports[name]["error"].lower()
        assert ("starttls" in error and "no answer" in error) or "deadline" in error, error
    assert "deadline" in reports["e-endless-answer"]["error"], reports["e-endless-answer"]
    assert endless.sent < ENDLESS_LINES  # cut by the client, not ended by the server
    assert "Traceback" not in run.stderr
    # No password reached a server that hung before its (TLS) session was set up. The
    # endless one is a plain-text channel by configuration, logged in to while the others
    # hang (channels are fetched at the same time), and stalls only after LOGIN.
    for name, transcript in transcripts.items():
        if name != "e-endless-answer":
            assert b"never-sent" not in transcript, name
    # Every channel's lock is free: another run starts at once (not turned away with 75).
    locks = list(lock_directory(f"sqlite:///{database_path}").glob("channel-*.lock"))
    assert len(locks) == len(reports)
    for path in locks:
        with filelock.FileLock(str(path), timeout=0):
            pass


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_server_that_never_stops_talking_is_cut_at_the_deadline(
        support, tmp_path, protocol):
    """Untagged IMAP responses (or UIDL lines) every 50 ms for 20 s: no socket timeout ever
    fires, yet the run ends at its 3 s deadline with a clean per-channel error, cutting the
    server off before it is done."""
    config = write_config(tmp_path / "eddymail.toml", timeout=1, deadline=3)
    handler: EndlessSelect | EndlessUidl = (
        EndlessSelect() if protocol == "imap" else EndlessUidl())
    with ScriptedServer(handler) as server:
        scripted_channel(support, "endless", server, protocol)
        run = run_child("-c", str(config), "--json", "fetch")
    assert run.returncode == EXIT_CHANNEL_FAILED, run.describe()
    (report,) = json.loads(run.stdout)["channels"]
    assert "deadline" in report["error"], report
    assert 0 < handler.sent < ENDLESS_LINES
    assert "Traceback" not in run.stderr


# --- 2. more than the memory should hold -------------------------------------------------------


class GigabyteLiteral(ImapServer):
    """Says a message has 2 KB (RFC822.SIZE) and then announces a 5 GB literal for it, and
    streams bytes of it until the client hangs up. ``sent`` counts the bytes it got out."""

    sent = 0

    def body_response(self, uid):
        return b"* 1 FETCH (UID %d BODY[] {5000000000}\r\n" % uid

    def uid_FETCH(self, connection, tag, arguments):
        if "BODY.PEEK[]" not in arguments.upper():
            return super().uid_FETCH(connection, tag, arguments)
        connection.send(self.body_response(1))
        chunk = b"x" * 65536
        for _ in range(16 * 1024):  # up to 1 GiB, as long as the client keeps reading
            try:
                connection.sock.sendall(chunk)
            except OSError:
                return
            self.sent += len(chunk)
        return None


class EndlessRetr(Pop3Server):
    """LIST says 2 KB; RETR sends line after line, up to 1 GiB, until the client hangs up.
    ``sent`` counts the bytes it got out."""

    sent = 0

    def send_body(self, connection, number):
        chunk = (b"y" * 1022 + b"\r\n") * 64
        for _ in range(16 * 1024):
            try:
                connection.sock.sendall(chunk)
            except OSError:
                return
            self.sent += len(chunk)


MEBIBYTE = 1024 * 1024


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_gigabyte_answer_is_refused_before_it_is_read(support, tmp_path, protocol,
                                                        database_path):
    """The server announces (IMAP) or streams (POP3) far more than ``max_message_bytes`` for
    a message it said was small. The child, its address space capped at 2 GiB, refuses it
    before reading it: a clean per-channel error (exit 3), a small peak RSS, nothing stored
    and nothing flagged or deleted on the server."""
    config = write_config(tmp_path / "eddymail.toml", timeout=5, deadline=30,
                          max_message_bytes=100_000)
    small = make_mail("claims to be small")
    if protocol == "imap":
        handler: Any = GigabyteLiteral([small])
    else:
        handler = EndlessRetr([("uid-1", small)])
    with ScriptedServer(handler) as server:
        scripted_channel(support, "bloated", server, protocol, "--after-fetch", "delete")
        run = run_child("-c", str(config), "--json", "fetch", address_space=2048 * MEBIBYTE)
    assert run.returncode == EXIT_CHANNEL_FAILED, run.describe()
    assert run.max_rss_bytes < 300 * MEBIBYTE, run.describe()
    # Refused at once, not after reading the gigabyte: what the server got out is what the
    # client read before it refused, plus what the socket buffers of loopback hold.
    assert handler.sent < 64 * MEBIBYTE, handler.sent
    (report,) = json.loads(run.stdout)["channels"]
    assert "over the limit" in report["error"] and "bytes" in report["error"], report
    assert "Traceback" not in run.stderr and "MemoryError" not in run.stderr
    # Nothing lost: the message is still there, untouched.
    if protocol == "imap":
        assert handler.messages == {1: small} and handler.flags == {1: set()}
    else:
        assert handler.messages == [("uid-1", small)]
        assert "DELE" not in server.commands()


class HonestlyHuge(ImapServer):
    """UID 2 is over the size limit and says so (RFC822.SIZE)."""


def test_mail_over_the_size_limit_is_never_downloaded(eddymail, support, tmp_path):
    """A message whose RFC822.SIZE is over ``max_message_bytes`` is quarantined from its
    header alone: its body is never asked for, and it stays on the server unflagged."""
    config = write_config(tmp_path / "eddymail.toml", max_message_bytes=20_000)
    mails = [make_mail("small one"), make_mail("huge", body="z" * 50_000 + "\n"),
             make_mail("small two")]
    handler = HonestlyHuge(mails)
    with ScriptedServer(handler) as server:
        scripted_channel(support, "sizes", server)
        (report,) = eddymail.json("-c", str(config), "fetch")["channels"]
        body_requests = [line for line in server.received if b"BODY.PEEK[]" in line.upper()]
    assert (report["new_tickets"], report["quarantined"]) == (2, 1)
    assert body_requests and all(b" 1,3 " in line for line in body_requests), body_requests
    assert handler.flags[2] == set() and 2 in handler.messages
    assert handler.flags[1] == handler.flags[3] == {SEEN}


# --- 3. protocol garbage, next to a healthy channel --------------------------------------------


class UntaggedThenHangUp(ImapServer):
    """Answers the body FETCH with an unrelated untagged response, then closes."""

    def uid_FETCH(self, connection, tag, arguments):
        if "BODY.PEEK[]" not in arguments.upper():
            return super().uid_FETCH(connection, tag, arguments)
        connection.send(b"* 1 FETCH (FLAGS (\\Seen))\r\n")
        connection.hang_up()
        return None


class UntaggedThenSilence(ImapServer):
    """Answers SELECT with its untagged data but never with the tagged OK."""

    def do_SELECT(self, connection, tag, arguments):
        connection.send(b"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] ok\r\n")
        connection.wait_for_hangup()
        return False


class LongUidlLine(Pop3Server):
    """A UIDL answer whose second line is 20 MB long."""

    def uidl_lines(self):
        return b"1 uid-1\r\n2 " + b"u" * (20 * MEBIBYTE) + b"\r\n"


class RepeatedUidl(Pop3Server):
    """Two messages share one unique id."""

    def uidl_lines(self):
        return b"1 same-id\r\n2 same-id\r\n"


GARBAGE = {
    "imap-untagged-then-hang-up": (lambda mails: UntaggedThenHangUp(mails), "imap",
                                   "closed the connection"),
    "imap-untagged-then-silence": (lambda mails: UntaggedThenSilence(mails), "imap",
                                   "no answer within 1 second"),
    "pop3-20-MB-uidl-line": (
        lambda mails: LongUidlLine([(f"uid-{n}", raw) for n, raw in enumerate(mails, 1)]),
        "pop3", "line longer"),
    "pop3-uidl-repeated": (
        lambda mails: RepeatedUidl([(f"uid-{n}", raw) for n, raw in enumerate(mails, 1)]),
        "pop3", "share the unique id"),
}


@pytest.mark.parametrize("case", sorted(GARBAGE))
def test_protocol_garbage_fails_its_channel_only(eddymail, support, healthy, dovecot,
                                                 mail_user, tmp_path, case):
    """Garbage where a protocol answer belongs: that channel fails cleanly (exit 3, the
    failure in the error log, no traceback), keeps its mail, and the healthy channel after
    it in the same run gets its mail."""
    make_handler, protocol, said = GARBAGE[case]
    config = write_config(tmp_path / "eddymail.toml", timeout=1)
    mails = [make_mail("hostile one"), make_mail("hostile two")]
    handler = make_handler(mails)
    with ScriptedServer(handler) as server:
        scripted_channel(support, "a-hostile", server, protocol, "--after-fetch", "delete")
        healthy()
        result = eddymail("-c", str(config), "fetch", code=None)
    assert_clean_channel_failure(result, "a-hostile")
    assert said in result.stderr, result.stderr
    logged = eddymail.json("log", "--channel", "a-hostile")["entries"]
    assert len(logged) == 1 and said in logged[0]["message"] + logged[0]["answer"], logged
    assert_healthy_channel_fetched(eddymail, dovecot, mail_user)
    # Nothing of the hostile mailbox was taken, so nothing of it was touched.
    subjects = {ticket["subject"] for ticket in eddymail.json("ticket", "list")["tickets"]}
    assert not subjects & {"hostile one", "hostile two"}
    if protocol == "imap":
        assert handler.messages == {1: mails[0], 2: mails[1]}
        assert handler.flags == {1: set(), 2: set()}
    else:
        assert [raw for _, raw in handler.messages] == mails


class LeavesOutOnce(ImapServer):
    """The first body FETCH silently leaves out UID 2; later ones answer in full."""

    def __init__(self, messages):
        super().__init__(messages)
        self.left_out = False

    def uid_FETCH(self, connection, tag, arguments):
        if "BODY.PEEK[]" not in arguments.upper() or self.left_out:
            return super().uid_FETCH(connection, tag, arguments)
        self.left_out = True
        for uid in (1, 3):
            connection.send(self.body_response(uid))
        connection.send(tag + b" OK done\r\n")
        return None


def test_uids_left_out_of_a_fetch_are_an_error_and_taken_next_run(
        eddymail, support, healthy, dovecot, mail_user):
    """A ``UID FETCH 1:3`` answered for UIDs 1 and 3 only: the run says so (exit 3, logged)
    instead of pretending all went well; UIDs 1 and 3 become tickets, UID 2 stays unread on
    the server and is taken by the next run; the healthy channel is fetched both times."""
    mails = [make_mail(f"numbered {number}") for number in (1, 2, 3)]
    handler = LeavesOutOnce(mails)
    with ScriptedServer(handler) as server:
        scripted_channel(support, "a-hostile", server)
        healthy()
        first = eddymail("fetch", code=None)
        assert_clean_channel_failure(first, "a-hostile")
        assert "left 1 message(s) out" in first.stderr and "UID 2" in first.stderr
        assert handler.flags == {1: {SEEN}, 2: set(), 3: {SEEN}}
        assert_healthy_channel_fetched(eddymail, dovecot, mail_user)
        second = eddymail.json("fetch")
    reports = {report["name"]: report for report in second["channels"]}
    assert reports["a-hostile"]["ok"] and reports["a-hostile"]["new_tickets"] == 1
    assert handler.flags == {1: {SEEN}, 2: {SEEN}, 3: {SEEN}}
    subjects = sorted(ticket["subject"] for ticket in eddymail.json("ticket", "list")["tickets"])
    assert subjects == ["healthy mail", "numbered 1", "numbered 2", "numbered 3"]


def test_the_memory_measure_sees_a_child_that_allocates():
    """The control for the peak-RSS assertions above: 400 MiB touched show up as such."""
    script = "x = bytearray(400 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096])"
    run = run_measured([sys.executable, "-c", script])
    assert run.returncode == 0, run.describe()
    assert run.max_rss_bytes >= 400 * MEBIBYTE, run.describe()


GREETING_LINES = 160


def endless_smtp_greeting(connection: Connection, sent: list[int]) -> None:
    """A greeting of continuation lines ("220-..."), one every 50 ms, that does not end (for
    8 s, then silence: a client without a deadline then fails on its timeout instead)."""
    for number in range(GREETING_LINES):
        connection.send(b"220-still greeting you %d\r\n" % number)
        sent.append(number)
        time.sleep(0.05)
    connection.wait_for_hangup()


def test_an_smtp_session_ends_at_its_deadline_however_the_server_talks():
    """The same watchdog guards SMTP: a greeting that never ends is cut at the endpoint's
    deadline (1.5 s) with an error that says so, before the server ran out of lines (the
    outbox has yet to pass its deadline in; see the hardening report)."""
    sent: list[int] = []
    with ScriptedServer(lambda connection: endless_smtp_greeting(connection, sent)) as server:
        endpoint = Endpoint(server.host, server.port, "none", "agent", timeout=1,
                            deadline=time.monotonic() + 1.5)
        with pytest.raises(MailServerError) as caught:
            SmtpClient(endpoint, "never-sent")
    assert "deadline" in caught.value.message and caught.value.answer == "deadline reached"
    assert 0 < len(sent) < GREETING_LINES
    assert b"never-sent" not in server.transcript
