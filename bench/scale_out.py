"""Scale-out figures (issue 13): many mailboxes behind network latency, several worker
processes on one PostgreSQL, and how soon ``watch`` turns new mail into a ticket.

Run from the repository root, as root (Dovecot and PostgreSQL harnesses, like the tests)::

    .venv/bin/python bench/scale_out.py                   # everything, ~10 minutes
    .venv/bin/python bench/scale_out.py --only parallel   # or: workers, watch

A private Dovecot holds one mailbox per channel; every channel reaches it through
``bench/latency_proxy.py``, which delays each direction by half of ``--rtt-ms`` (50 ms
round trip by default). ``--reuse-login-processes`` runs Dovecot in its high-performance
login mode (less server CPU per connection; TLS sessions can be resumed). Prints, with the
machine's load (``uptime``) before each part and the CPU time of eddymail (and, for the
no-mail runs, of Dovecot, on the same cores) next to each wall time:

* parallel: wall time of one ``eddymail -q fetch`` over ``--channels`` (200) mailboxes with
  no new mail, for ``--jobs 1`` and several other values, and with ``--new`` (5) new
  messages in each, for ``--jobs 1`` and the default; the speed-ups (goal: no mail in < 10 s);
* workers: 1, 2 and 4 ``eddymail -q fetch`` processes started together (standing in for
  hosts) on one PostgreSQL database over the same mailboxes with mail waiting, each with the
  default jobs and with ``--jobs 1``; speed-up over one worker (goal: 4 workers >= 3x);
* watch: ``eddymail watch`` over ``--watch-channels`` (50) mailboxes; ``--watch-messages``
  (100) messages are appended one at a time, round-robin over them; time from the end of
  each APPEND to its ticket in the database, median and 95th percentile (goal: < 2 s).

Everything runs as child processes (start-up included) and only on 127.0.0.1; everything
started is stopped and removed at the end. A script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from mailboxes import imap_session  # noqa: E402  (bench/ is sys.path[0])

from bench import latency_proxy  # noqa: E402
from tests.harness.certs import make_pki  # noqa: E402
from tests.harness.dovecot import DovecotServer, MailUser, start_dovecot  # noqa: E402

DEFAULT_JOBS = "default"


def uptime() -> str:
    """The load line of ``uptime`` (the machine may be shared)."""
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def children_cpu() -> float:
    """CPU seconds (user + system) of the child processes waited for so far: on a shared
    machine the wall time says as much about the load as about eddymail."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_cpu(root: int) -> float:
    """CPU seconds of process ``root`` and its descendants, with the children they reaped
    (Linux ``/proc``): what the private Dovecot spends on the same cores."""
    parents: dict[int, int] = {}
    spent: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parents[int(entry)] = int(fields[1])
        spent[int(entry)] = sum(int(value) for value in fields[11:15]) / tick
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += spent.get(pid, 0.0)
        todo += [child for child, parent in parents.items() if parent == pid]
    return total


def mail(tag: str, number: int) -> bytes:
    """A small plain-text message from its own sender, with a findable Message-ID."""
    return (f"From: Customer {number} <c{number}-{tag}@customer.example>\r\n"
            f"To: help@example.test\r\nSubject: {tag} {number}\r\n"
            f"Message-ID: <{tag}-{number}@customer.example>\r\n"
            "Date: Thu, 03 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Hello, this is message {number} ({tag}).\r\n" + "Some words. " * 40 + "\r\n"
            ).encode()


def deliver(server: DovecotServer, users: list[MailUser], tag: str, count: int) -> None:
    for index, user in enumerate(users):
        with imap_session(server, user, tls=False) as imap:
            for number in range(count):
                imap.append("INBOX", None, None, mail(f"{tag}-{index}", number))


class Workspace:
    """A database (SQLite file or PostgreSQL URL) with one channel per mailbox."""

    def __init__(self, directory: Path, url: str | None = None) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.url = url or f"sqlite:///{directory / 'eddymail.db'}"
        self.last_cpu = 0.0
        self.environment = dict(os.environ, EDDYMAIL_DATABASE_URL=self.url,
                                XDG_DATA_HOME=str(directory / "data"),
                                XDG_CONFIG_HOME=str(directory / "config"), NO_COLOR="1",
                                PYTHONPATH=str(REPO_ROOT))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "eddymail", *args]

    def run(self, *args: str) -> float:
        """Run ``eddymail ARGS`` to its end; its wall time (its CPU time in ``last_cpu``).
        Fails loudly on a bad exit."""
        cpu = children_cpu()
        started = time.perf_counter()
        done = subprocess.run(self.command(*args), env=self.environment, capture_output=True,
                              text=True, check=False, cwd=REPO_ROOT)
        seconds = time.perf_counter() - started
        self.last_cpu = children_cpu() - cpu
        if done.returncode != 0:
            raise RuntimeError(f"eddymail {' '.join(args)} exited {done.returncode}: "
                               f"{done.stderr[-2000:]}")
        return seconds

    def add_channels(self, server: DovecotServer, users: list[MailUser], port: int) -> None:
        """One channel per mailbox through the proxy (in one process: quicker than 200)."""
        script = ["import sys", "from click.testing import CliRunner",
                  "from eddymail.cli import cli", "runner = CliRunner()",
                  "def run(*args):",
                  "    result = runner.invoke(cli, list(args))",
                  "    assert result.exit_code == 0, (args, result.output)",
                  "run('db', 'migrate')", "run('department', 'add', 'Support')"]
        for index, user in enumerate(users):
            password = self.directory / f"password-{index}"
            password.write_text(user.password + "\n")
            args = ["channel", "add", f"box{index:03d}", "--department", "Support",
                    "--email", user.address, "--login", user.login, "--protocol", "imap",
                    "--host", "127.0.0.1", "--port", str(port), "--security", "ssl",
                    "--ca-file", str(server.pki.ca_file),
                    "--password-command", f"cat {shlex.quote(str(password))}"]
            script.append(f"run(*{args!r})")
        subprocess.run([sys.executable, "-c", "\n".join(script)], env=self.environment,
                       check=True, cwd=REPO_ROOT)

    def tickets(self) -> int:
        if self.url.startswith("sqlite"):
            connection = sqlite3.connect(str(self.directory / "eddymail.db"))
            try:
                return int(connection.execute("SELECT COUNT(*) FROM ticket").fetchone()[0])
            finally:
                connection.close()
        import psycopg2

        connection = psycopg2.connect(self.url)
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT COUNT(*) FROM ticket")
                return int(cursor.fetchone()[0])
        finally:
            connection.close()


def jobs_args(jobs: str) -> list[str]:
    return [] if jobs == DEFAULT_JOBS else ["--jobs", jobs]


# --- the parts ---------------------------------------------------------------------------------


def parallel(server: DovecotServer, users: list[MailUser], port: int, scratch: Path,
             options: argparse.Namespace) -> None:
    print(f"\n== one fetch run over {len(users)} channels at {options.rtt_ms:g} ms RTT ==")
    print(f"load: {uptime()}")
    workspace = Workspace(scratch / "parallel")
    workspace.add_channels(server, users, port)
    first = workspace.run("-q", "fetch")
    print(f"first connection of every channel (not compared): {first:.1f} s")
    idle: dict[str, float] = {}
    for jobs in options.jobs_list.split(","):
        served = tree_cpu(server.pid)
        idle[jobs] = workspace.run("-q", "fetch", *jobs_args(jobs))
        print(f"no new mail, --jobs {jobs:>7}: {idle[jobs]:6.1f} s "
              f"(CPU: eddymail {workspace.last_cpu:.1f} s, "
              f"Dovecot {tree_cpu(server.pid) - served:.1f} s)")
    if "1" in idle and DEFAULT_JOBS in idle:
        verdict = "meets" if idle[DEFAULT_JOBS] < 10 else "MISSES"
        print(f"    speed-up default / --jobs 1: {idle['1'] / idle[DEFAULT_JOBS]:.1f}x; "
              f"default run {idle[DEFAULT_JOBS]:.1f} s ({verdict} the goal of < 10 s)")
    taken: dict[str, float] = {}
    for jobs in ("1", DEFAULT_JOBS):
        before = workspace.tickets()
        deliver(server, users, f"par{jobs}", options.new)
        taken[jobs] = workspace.run("-q", "fetch", *jobs_args(jobs))
        made = workspace.tickets() - before
        print(f"{options.new} new in each, --jobs {jobs:>7}: {taken[jobs]:6.1f} s "
              f"({made} tickets, eddymail's CPU {workspace.last_cpu:.1f} s)")
    print(f"    speed-up default / --jobs 1: {taken['1'] / taken[DEFAULT_JOBS]:.1f}x")
    print(f"load after: {uptime()}")


def workers(server: DovecotServer, users: list[MailUser], port: int, scratch: Path,
            options: argparse.Namespace) -> None:
    from tests.harness.postgres import start_postgres

    print(f"\n== worker processes on one PostgreSQL, {len(users)} channels, "
          f"{options.new} new in each ==")
    directory = Path(tempfile.mkdtemp(prefix="eddymail-bench-postgres-"))
    # Each worker holds up to `jobs` connections while it fetches (16 by default).
    postgres = start_postgres(directory, max_connections=200)
    try:
        print(f"load: {uptime()}")
        for jobs in (DEFAULT_JOBS, "1"):
            times: dict[int, float] = {}
            for count in (1, 2, 4):
                name = postgres.create_database()
                workspace = Workspace(scratch / f"workers-{jobs}-{count}", postgres.url(name))
                workspace.add_channels(server, users, port)
                workspace.run("-q", "fetch")  # first connection, not timed
                deliver(server, users, f"w{jobs}{count}", options.new)
                cpu = children_cpu()
                started = time.perf_counter()
                processes = [subprocess.Popen(workspace.command("-q", "fetch", *jobs_args(jobs)),
                                              env=workspace.environment, cwd=REPO_ROOT,
                                              stderr=subprocess.PIPE)
                             for _ in range(count)]
                codes = [process.wait() for process in processes]
                times[count] = time.perf_counter() - started
                cpu = children_cpu() - cpu
                for process in processes:
                    if process.stderr is not None:
                        process.stderr.close()
                made = workspace.tickets()
                print(f"{count} worker(s), --jobs {jobs:>7}: {times[count]:6.1f} s, "
                      f"{made} tickets, exit codes {codes}, workers' CPU {cpu:.1f} s")
                postgres.drop_database(name)
            verdict = "meets" if times[1] / times[4] >= 3 else "MISSES"
            print(f"    speed-up (--jobs {jobs}): 2 workers {times[1] / times[2]:.1f}x, "
                  f"4 workers {times[1] / times[4]:.1f}x ({verdict} the goal of >= 3x)")
        print(f"load after: {uptime()}")
    finally:
        postgres.stop()
        shutil.rmtree(directory, ignore_errors=True)


def watch(server: DovecotServer, users: list[MailUser], port: int, scratch: Path,
          options: argparse.Namespace) -> None:
    users = users[:options.watch_channels]
    print(f"\n== eddymail watch over {len(users)} channels at {options.rtt_ms:g} ms RTT, "
          f"{options.watch_messages} messages ==")
    print(f"load: {uptime()}")
    workspace = Workspace(scratch / "watch")
    workspace.add_channels(server, users, port)
    workspace.run("-q", "fetch")  # first connection, not timed
    log_path = scratch / "watch.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(workspace.command("watch"), env=workspace.environment,
                                   cwd=REPO_ROOT, stderr=log, stdout=subprocess.DEVNULL)
    try:
        ends = time.monotonic() + 120
        while log_path.read_text().count("waiting for mail (IDLE)") < len(users):
            if process.poll() is not None or time.monotonic() > ends:
                raise RuntimeError("watch did not get ready:\n" + log_path.read_text()[-3000:])
            time.sleep(0.05)
        latencies = measure_watch(server, users, workspace, options.watch_messages)
    finally:
        process.terminate()
        process.wait(timeout=60)
    ordered = sorted(latencies)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    median = statistics.median(ordered)
    verdict = "meets" if p95 < 2 else "MISSES"
    print(f"APPEND -> ticket: median {median:.2f} s, 95th percentile {p95:.2f} s, "
          f"max {ordered[-1]:.2f} s over {len(ordered)} messages ({verdict} the goal of < 2 s)")
    print(f"load after: {uptime()}")


def measure_watch(server: DovecotServer, users: list[MailUser], workspace: Workspace,
                  count: int) -> list[float]:
    """Append ``count`` messages one at a time; seconds from each APPEND to its ticket."""
    appended: dict[str, float] = {}
    seen: dict[str, float] = {}
    done = threading.Event()

    def watch_database() -> None:
        connection = sqlite3.connect(str(workspace.directory / "eddymail.db"), timeout=30)
        try:
            while not done.is_set() or len(seen) < len(appended):
                for (message_id,) in connection.execute(
                        "SELECT message_id FROM message WHERE ticket_id IS NOT NULL"):
                    if message_id not in seen and message_id in appended:
                        seen[message_id] = time.perf_counter()
                if done.is_set() and time.perf_counter() - max(appended.values()) > 30:
                    return
                time.sleep(0.01)
        finally:
            connection.close()

    poller = threading.Thread(target=watch_database, daemon=True)
    poller.start()
    sessions = [contextlib.ExitStack() for _ in users]
    imaps = [stack.enter_context(imap_session(server, user, tls=False))
             for stack, user in zip(sessions, users, strict=True)]
    try:
        for number in range(count):
            message_id = f"watch-{number}@customer.example"
            imaps[number % len(users)].append("INBOX", None, None, mail("watch", number))
            appended[message_id] = time.perf_counter()
            time.sleep(0.1)  # a steady trickle, not a burst
        done.set()
        poller.join(timeout=60)
    finally:
        for stack in sessions:
            stack.close()
    missing = set(appended) - set(seen)
    if missing:
        print(f"    {len(missing)} message(s) never became tickets within 30 s")
    return [seen[key] - appended[key] for key in seen]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=200)
    parser.add_argument("--rtt-ms", type=float, default=50.0)
    parser.add_argument("--new", type=int, default=5, help="new messages per mailbox")
    parser.add_argument("--jobs-list", default="1,8,default,32",
                        help="--jobs values for the no-mail runs ('default': no option)")
    parser.add_argument("--watch-channels", type=int, default=50)
    parser.add_argument("--watch-messages", type=int, default=100)
    parser.add_argument("--only", choices=("parallel", "workers", "watch"), action="append")
    parser.add_argument("--reuse-login-processes", action="store_true",
                        help="Dovecot's high-performance login mode (busy servers use it): "
                        "less server CPU per connection, and TLS sessions can be resumed")
    options = parser.parse_args(argv)
    parts = options.only or ["parallel", "workers", "watch"]
    scratch = Path(tempfile.mkdtemp(prefix="eddymail-bench-scale-"))
    dovecot_dir = Path(tempfile.mkdtemp(prefix="eddymail-bench-dovecot-"))
    server: DovecotServer | None = None
    proxy: subprocess.Popen[bytes] | None = None
    try:
        server = start_dovecot(dovecot_dir, make_pki(scratch / "pki"),
                               reuse_login_processes=options.reuse_login_processes)
        proxy, port = latency_proxy.start(server.imaps_port, options.rtt_ms)
        count = max(options.channels, options.watch_channels)
        users = [server.create_user(f"scale{index:03d}") for index in range(count)]
        print(f"eddymail scale-out; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
              f"{count} mailboxes behind a {options.rtt_ms:g} ms RTT proxy; Dovecot login "
              f"processes {'reused' if options.reuse_login_processes else 'one per connection'}")
        for part in parts:
            chosen = users if part == "watch" else users[:options.channels]
            globals()[part](server, chosen, port, scratch, options)
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=30)
        if server is not None:
            server.stop()
        shutil.rmtree(dovecot_dir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
