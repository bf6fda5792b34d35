"""How fast ``eddymail fetch`` takes mail in, against a bare imaplib loop over the same mailbox.

Run from the repository root (Dovecot must be installed; it needs root, like the tests)::

    .venv/bin/python bench/fetch_throughput.py [--messages N] [--rounds R] [--profile]
    .venv/bin/python bench/fetch_throughput.py --parse-only   # (c) alone: no Dovecot, no root

It starts a private Dovecot (``tests.harness``), seeds N messages into one user's Maildir
(5 KB of text each, every tenth with a 200 KB attachment) and prints:

* (a) a bare loop: imaplib over IMAPS, ``UID FETCH`` of ``BODY.PEEK[]`` in batches of 50,
  ``email.message_from_bytes(policy=default)`` per message, no database;
* (b) ``eddymail -q fetch --initial all`` of the same mailbox into an empty SQLite database,
  as cron would run it (a child process, start-up included);
* their rates in messages per second and the ratio (target: b >= 0.5 x a); (a) and (b)
  take turns ``--rounds`` times (default 3) and the medians are compared;
* (c) parsing alone: ``parse_message`` over the same N messages (with CRLF line ends, as
  IMAP delivers them) in this process, taking turns with ``email.message_from_bytes
  (policy=default)`` over the same bytes; wall and CPU time per message (CPU time is the
  steadier figure on a shared machine), medians of ``--rounds`` turns;
* the wall time of ``eddymail -q fetch`` when nothing is new, with 3 channels (median of 5);
* the peak RSS of fetching one message with a 50 MB attachment, next to that of fetching
  one small message, in the same run.

``--profile`` also runs (b) once more under cProfile into another empty database and prints
the top functions. Everything it starts (Dovecot, temporary directories) is removed at the end.
This is a script that prints figures, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import contextlib
import email
import email.policy
import imaplib
import io
import os
import pstats
import pwd
import random
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# A script's sys.path starts at bench/, so the harness in tests/ needs the root added.
sys.path.insert(0, str(REPO_ROOT))

from eddymail.mail.message.parse import parse_message  # noqa: E402
from tests.harness.certs import make_pki  # noqa: E402
from tests.harness.dovecot import DovecotServer, MailUser, start_dovecot  # noqa: E402

BATCH = 50
TEXT_BYTES = 5 * 1024
ATTACHMENT_BYTES = 200 * 1024
BIG_ATTACHMENT_BYTES = 50 * 1024 * 1024
TARGET_RATIO = 0.5

# Forks and times one command and writes "max_rss_kib seconds" to argv[1]. Kept to modules
# that are loaded at start-up anyway, so the launcher itself stays a few MiB small.
_LAUNCHER = """\
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as result:
    result.write(f"{usage.ru_maxrss} {seconds}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


# --- seeding -----------------------------------------------------------------------------------


def text_body(size: int, rng: random.Random) -> str:
    """About ``size`` bytes of plain text in 72-column lines."""
    words = ("printer", "invoice", "password", "urgent", "please", "server", "mailbox",
             "thanks", "again", "error", "since", "monday", "account", "cannot", "login")
    lines, total = [], 0
    while total < size:
        line = " ".join(rng.choice(words) for _ in range(10))[:72]
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines) + "\n"


def make_message(number: int, rng: random.Random, attachment_bytes: int = 0) -> bytes:
    """One customer message: ~5 KB of text, plus a binary attachment if asked."""
    message = EmailMessage()
    message["From"] = f"Customer {number % 50} <customer{number % 50}@customer.example>"
    message["To"] = "help@example.test"
    message["Subject"] = f"Bench message {number}"
    message["Date"] = format_datetime(datetime(2026, 11, 27, 9, number // 60 % 60, number % 60,
                                               tzinfo=UTC))
    message["Message-ID"] = make_msgid(f"bench{number}", domain="customer.example")
    message.set_content(text_body(TEXT_BYTES, rng))
    if attachment_bytes:
        message.add_attachment(rng.randbytes(attachment_bytes), maintype="application",
                               subtype="octet-stream", filename=f"report-{number}.bin")
    return message.as_bytes()


def maildir_of(server: DovecotServer, user: MailUser) -> Path:
    """The user's Maildir, created with the ownership Dovecot's mail processes expect."""
    owner = pwd.getpwnam("nobody")
    home = server.directory / "home" / user.login.lower()
    maildir = home / "Maildir"
    for path in (home, maildir, maildir / "new", maildir / "cur", maildir / "tmp"):
        path.mkdir(exist_ok=True)
        os.chown(path, owner.pw_uid, owner.pw_gid)
        path.chmod(0o700)
    return maildir


def seed_maildir(server: DovecotServer, user: MailUser, messages: Sequence[bytes]) -> None:
    """Write messages straight into Maildir/new (much faster than APPEND), then let Dovecot
    index them with one SELECT so neither timed loop pays for the indexing."""
    owner = pwd.getpwnam("nobody")
    maildir = maildir_of(server, user)
    stamp = int(time.time())
    for number, raw in enumerate(messages):
        raw = raw.replace(b"\r\n", b"\n")  # Maildir files use LF; IMAP shows CRLF
        # S= and W= (size with CRLF) spare Dovecot reading every file for RFC822.SIZE.
        crlf_size = len(raw) + raw.count(b"\n")
        name = f"{stamp}.M{number}P{os.getpid()}.bench,S={len(raw)},W={crlf_size}"
        temporary = maildir / "tmp" / name
        temporary.write_bytes(raw)
        os.chown(temporary, owner.pw_uid, owner.pw_gid)
        temporary.chmod(0o600)
        temporary.rename(maildir / "new" / name)
    with imap_session(server, user) as imap:
        typ, data = imap.select("INBOX", readonly=True)
        if typ != "OK" or int(data[0]) != len(messages):
            raise RuntimeError(f"Dovecot sees {data!r} messages, {len(messages)} were seeded")


@contextlib.contextmanager
def imap_session(server: DovecotServer, user: MailUser) -> Iterator[imaplib.IMAP4_SSL]:
    """A logged-in IMAPS session that verifies the test CA, as eddymail's own would."""
    imap = imaplib.IMAP4_SSL(server.host, server.imaps_port,
                             ssl_context=server.pki.client_context(), timeout=60)
    try:
        imap.login(user.login, user.password)
        yield imap
    finally:
        with contextlib.suppress(Exception):
            imap.logout()


# --- (a) the bare loop -------------------------------------------------------------------------


def bare_loop(server: DovecotServer, user: MailUser) -> tuple[int, float]:
    """UID FETCH BODY.PEEK[] in batches of 50 and parse each message; (count, seconds)."""
    started = time.perf_counter()
    count = 0
    with imap_session(server, user) as imap:
        imap.select("INBOX", readonly=True)
        _, data = imap.uid("SEARCH", "ALL")
        uids = [int(uid) for uid in data[0].split()]
        for start in range(0, len(uids), BATCH):
            batch = uids[start:start + BATCH]
            _, data = imap.uid("FETCH", f"{batch[0]}:{batch[-1]}", "(BODY.PEEK[])")
            for item in data:
                if isinstance(item, tuple):
                    email.message_from_bytes(item[1], policy=email.policy.default)
                    count += 1
    return count, time.perf_counter() - started


# --- eddymail as cron runs it -----------------------------------------------------------------


@dataclass
class Workspace:
    """An isolated eddymail: its own database, HOME and XDG directories, no real keyring."""

    directory: Path

    def __post_init__(self) -> None:
        for name in ("home", "config", "data"):
            (self.directory / name).mkdir(parents=True, exist_ok=True)

    @property
    def environment(self) -> dict[str, str]:
        """Environment for an eddymail child process in this workspace."""
        environment = {key: value for key, value in os.environ.items()
                       if not key.startswith("EDDYMAIL_")}
        environment.update(
            HOME=str(self.directory / "home"),
            XDG_CONFIG_HOME=str(self.directory / "config"),
            XDG_DATA_HOME=str(self.directory / "data"),
            EDDYMAIL_DATABASE_URL=f"sqlite:///{self.directory / 'eddymail.db'}",
            # Channels use a password command; should anything still ask for a keyring, it
            # gets the tests' in-memory one, never the real one.
            PYTHON_KEYRING_BACKEND="tests.harness.keyring_backend.MemoryKeyring",
            PYTHONPATH=str(REPO_ROOT),
            NO_COLOR="1",
        )
        return environment

    def command(self, *args: str, profile: Path | None = None) -> list[str]:
        """argv of ``eddymail ARGS`` with this interpreter, under cProfile if ``profile``."""
        profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
        return [sys.executable, *profiler, "-m", "eddymail", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``eddymail ARGS``; raise with its output when it fails."""
        completed = subprocess.run(self.command(*args), env=self.environment, cwd=REPO_ROOT,
                                   capture_output=True, text=True, check=False, timeout=3600)
        if completed.returncode != 0:
            raise RuntimeError(f"eddymail {' '.join(args)} exited {completed.returncode}:\n"
                               f"{completed.stdout}\n{completed.stderr}")
        return completed

    def measured(self, *args: str, profile: Path | None = None) -> Measurement:
        """Run ``eddymail ARGS`` and measure its wall time and peak RSS.

        The child is started by a tiny launcher process that reports the child's own
        ``wait4`` figures: a child forked straight from this (big) process would inherit its
        resident size in ``ru_maxrss``, which survives ``exec`` on Linux.
        """
        result_file = self.directory / "measured.txt"
        process = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, str(result_file),
             *self.command(*args, profile=profile)],
            env=self.environment, cwd=REPO_ROOT, stdin=subprocess.DEVNULL,
            capture_output=True, check=False, timeout=3600,
        )
        if process.returncode != 0:
            raise RuntimeError(f"eddymail {' '.join(args)} exited {process.returncode}:\n"
                               f"{process.stdout.decode(errors='replace')}\n"
                               f"{process.stderr.decode(errors='replace')}")
        max_rss_kib, seconds = result_file.read_text().split()
        return Measurement(float(seconds), int(max_rss_kib) * 1024)

    def add_channel(self, server: DovecotServer, user: MailUser, name: str) -> None:
        """An IMAPS channel for ``user``; the password comes from ``cat FILE``."""
        password_file = self.directory / f"{name}.password"
        password_file.write_text(user.password + "\n")
        password_file.chmod(0o600)
        if not (self.directory / ".department").exists():
            self.run("department", "add", "Support")
            (self.directory / ".department").touch()
        self.run("channel", "add", name, "--department", "Support", "--email", user.address,
                 "--login", user.login, "--protocol", "imap", "--host", server.host,
                 "--port", str(server.imaps_port), "--security", "ssl",
                 "--ca-file", str(server.pki.ca_file),
                 "--password-command", f"cat {shlex.quote(str(password_file))}")

    def count(self, table: str) -> int:
        """Rows in ``table`` of this workspace's database."""
        connection = sqlite3.connect(self.directory / "eddymail.db")
        try:
            return int(connection.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0])  # noqa: S608
        finally:
            connection.close()


@dataclass(frozen=True)
class Measurement:
    """Wall time and peak resident memory of one child process."""

    seconds: float
    max_rss: int  # bytes


def mib(size: float) -> str:
    """Bytes as MiB with one decimal."""
    return f"{size / 1024 / 1024:.1f} MiB"


# --- the benchmark -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="mailbox size (default 2000)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile eddymail fetch with cProfile and print the hotspots")
    parser.add_argument("--rounds", type=int, default=3,
                        help="turns of (a) then (b); medians are compared (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the message text")
    parser.add_argument("--parse-only", action="store_true",
                        help="only (c), parsing in this process: needs no Dovecot")
    options = parser.parse_args(argv)
    count = options.messages
    rng = random.Random(options.seed)
    if options.parse_only:
        messages = [make_message(n, rng, ATTACHMENT_BYTES if n % 10 == 9 else 0)
                    for n in range(count)]
        print(f"parsing only, {count} messages (5 KB text; every 10th with a 200 KB "
              f"attachment); Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        parse_only(messages, options.rounds)
        return 0

    scratch = Path(tempfile.mkdtemp(prefix="eddymail-bench-"))
    # Dovecot's mail processes run as 'nobody' and must reach the homes: a /tmp dir of its own.
    dovecot_dir = Path(tempfile.mkdtemp(prefix="eddymail-bench-dovecot-"))
    server: DovecotServer | None = None
    try:
        server = start_dovecot(dovecot_dir, make_pki(scratch / "pki"))
        print(f"eddymail fetch throughput, {count} messages "
              f"(5 KB text; every 10th with a 200 KB attachment); Python "
              f"{sys.version.split()[0]}, {os.cpu_count()} CPUs")

        started = time.perf_counter()
        messages = [make_message(n, rng, ATTACHMENT_BYTES if n % 10 == 9 else 0)
                    for n in range(count)]
        built = time.perf_counter() - started
        mailbox = server.create_user("bench")
        started = time.perf_counter()
        seed_maildir(server, mailbox, messages)
        seeded = time.perf_counter() - started
        total_bytes = sum(len(raw) for raw in messages)
        print(f"seeding (not timed below): built in {built:.1f} s, written to Maildir and "
              f"indexed in {seeded:.1f} s, {mib(total_bytes)} in all")

        # The machine may be shared: (a) and (b) take turns, so a busy spell slows both,
        # and the medians are compared.
        bare_times: list[float] = []
        fetches: list[Measurement] = []
        for turn in range(options.rounds):
            taken, seconds = bare_loop(server, mailbox)
            if taken != count:
                raise RuntimeError(f"the bare loop saw {taken} messages, {count} were seeded")
            bare_times.append(seconds)
            fetches.append(eddymail_fetch(server, mailbox, scratch / f"throughput{turn}", count))
        bare_seconds = statistics.median(bare_times)
        fetch_seconds = statistics.median(fetch.seconds for fetch in fetches)
        bare_rate, eddymail_rate = count / bare_seconds, count / fetch_seconds
        ratio = eddymail_rate / bare_rate
        turns = list(zip(bare_times, fetches, strict=True))
        each = ", ".join(f"{bare / fetch.seconds:.2f}" for bare, fetch in turns)
        times = ", ".join(f"{bare:.2f}/{fetch.seconds:.2f}" for bare, fetch in turns)
        print(f"(a) bare imaplib loop:   {bare_seconds:7.2f} s  {bare_rate:7.1f} messages/s"
              f"  (median of {options.rounds})")
        print(f"(b) eddymail fetch:      {fetch_seconds:7.2f} s  {eddymail_rate:7.1f} messages/s"
              f"  (median of {options.rounds}; {count} tickets each, peak RSS "
              f"{mib(max(fetch.max_rss for fetch in fetches))}, start-up included)")
        verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
        print(f"    ratio eddymail / bare loop: {ratio:.2f} ({verdict} the target of "
              f"{TARGET_RATIO}); turn by turn: {each}")
        print(f"    seconds per turn, (a)/(b): {times}")
        parse_only(messages, options.rounds)

        idle_fetch(server, scratch)
        peak_memory(server, scratch, rng)
        if options.profile:
            profile_fetch(server, mailbox, scratch)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(dovecot_dir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def eddymail_fetch(server: DovecotServer, mailbox: MailUser, directory: Path,
                   count: int) -> Measurement:
    """(b): ``eddymail -q fetch --initial all`` of the whole mailbox into an empty database."""
    # An earlier turn marked everything read; unread again, so --initial all takes it all.
    server.set_flags(mailbox, ["\\Seen"], add=False)
    workspace = Workspace(directory)
    workspace.add_channel(server, mailbox, "bench")
    os.sync()  # what earlier turns wrote is on disk, not written back during this one
    fetch = workspace.measured("-q", "fetch", "--initial", "all")
    tickets = workspace.count("ticket")
    if tickets != count:
        raise RuntimeError(f"eddymail made {tickets} tickets of {count} messages")
    shutil.rmtree(directory)  # 100 MB of database per turn; the next turn starts afresh
    return fetch


def parse_only(messages: Sequence[bytes], rounds: int) -> None:
    """(c): ``parse_message`` alone over ``messages``, against the stdlib's default parse."""
    delivered = [raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for raw in messages]
    timings: dict[str, list[tuple[float, float]]] = {"eddymail": [], "stdlib": []}
    for _ in range(rounds):
        for name in timings:
            wall, cpu = time.perf_counter(), time.process_time()
            for raw in delivered:
                if name == "eddymail":
                    parse_message(raw)
                else:
                    email.message_from_bytes(raw, policy=email.policy.default)
            timings[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    per_message = {name: (statistics.median(w for w, _ in turns) / len(delivered),
                          statistics.median(c for _, c in turns) / len(delivered))
                   for name, turns in timings.items()}
    for name, label in (("eddymail", "parse_message"), ("stdlib", "email default policy")):
        wall, cpu = per_message[name]
        print(f"(c) {label + ':':22} {wall * 1e6:7.0f} us/message wall, {cpu * 1e6:7.0f} us CPU, "
              f"{1 / cpu:7.0f} messages/s of CPU  (median of {rounds})")
    ratio = per_message["stdlib"][1] / per_message["eddymail"][1]
    print(f"    parse_message takes {1 / ratio:.2f} x the CPU time of the bare loop's "
          f"email.message_from_bytes")


def idle_fetch(server: DovecotServer, scratch: Path, runs: int = 5) -> None:
    """Wall time of a cron run that finds nothing new on 3 channels."""
    workspace = Workspace(scratch / "idle")
    rng = random.Random(3)
    for number in range(3):
        user = server.create_user(f"idle{number}")
        seed_maildir(server, user, [make_message(n, rng) for n in range(20)])
        workspace.add_channel(server, user, f"idle{number}")
    workspace.run("-q", "fetch", "--initial", "all")
    times = [workspace.measured("-q", "fetch").seconds for _ in range(runs)]
    version = workspace.measured("--version").seconds
    print(f"nothing new, 3 channels: eddymail -q fetch median {statistics.median(times):.2f} s "
          f"of {runs} runs (min {min(times):.2f}, max {max(times):.2f}); "
          f"`eddymail --version` alone: {version:.2f} s")


def peak_memory(server: DovecotServer, scratch: Path, rng: random.Random) -> None:
    """Peak RSS of fetching one message with a 50 MB attachment against one small message."""
    results = {}
    for label, attachment in (("small", 0), ("50 MB attachment", BIG_ATTACHMENT_BYTES)):
        user = server.create_user(f"memory-{label.replace(' ', '')}")
        raw = make_message(0, rng, attachment)
        seed_maildir(server, user, [raw])
        workspace = Workspace(scratch / f"memory-{label.replace(' ', '')}")
        config = workspace.directory / "eddymail.toml"
        # Raised so the big one is imported rather than quarantined as oversized.
        config.write_text("[fetch]\nmax_message_bytes = 300000000\n")
        workspace.add_channel(server, user, "memory")
        measured = workspace.measured("-q", "-c", str(config), "fetch", "--initial", "all")
        status = "ticket" if workspace.count("ticket") == 1 else "NOT a ticket (quarantined?)"
        results[label] = measured
        print(f"one message, {label} ({mib(len(raw))} on the wire): "
              f"peak RSS {mib(measured.max_rss)}, {measured.seconds:.2f} s, {status}")
    big, small = results["50 MB attachment"].max_rss, results["small"].max_rss
    ratio, extra = big / small, big - small
    print(f"    peak RSS ratio 50 MB / small: {ratio:.1f}x (+{mib(extra)}, i.e. "
          f"{extra / BIG_ATTACHMENT_BYTES:.1f} x the attachment size)")


def profile_fetch(server: DovecotServer, mailbox: MailUser, scratch: Path) -> None:
    """Run (b) once more under cProfile and print where the time goes."""
    # (b) marked everything read; unread again, so --initial all takes it all once more.
    server.set_flags(mailbox, ["\\Seen"], add=False)
    workspace = Workspace(scratch / "profile")
    workspace.add_channel(server, mailbox, "bench")
    output = scratch / "fetch.prof"
    workspace.measured("-q", "fetch", "--initial", "all", profile=output)
    for sort in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(str(output), stream=text).strip_dirs().sort_stats(sort).print_stats(25)
        print(f"\n--- cProfile of eddymail fetch, top 25 by {sort} ---")
        print(text.getvalue().split("\n\n", 1)[-1].rstrip())


if __name__ == "__main__":
    sys.exit(main())
