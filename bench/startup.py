"""What starting eddymail costs, next to starting Python itself (``python -c pass``).

Run from the repository root::

    .venv/bin/python bench/startup.py [--runs N] [--imap] [--instructions] [--imports]

Every case is a child process run the way cron or a mail server runs it (the ``eddymail``
console script of this virtualenv, with its own HOME and database), measured for CPU time
(user + system), wall time and peak RSS (see ``childprocess``). Each round runs
``python -c pass`` with the same interpreter and environment, then every case, so a busy spell
on a shared machine slows both sides of a ratio alike; ratios compare medians.

Cases and the targets of issue 14:

* ``eddymail --version`` and ``eddymail --help``: at most 3x ``python -c pass``;
* ``eddymail -q ingest --channel plain`` of one small plain-text message from stdin into an
  existing SQLite database (a new customer each run, a channel that sends no mail): at most
  5x in CPU time, peak RSS under 30 MiB;
* the same into a channel that sends notifications (a registration letter is queued for the
  new customer: the template is rendered and the mail composed, not sent);
* with ``--imap`` (needs Dovecot and root, like the tests): ``eddymail -q fetch`` of one IMAPS
  channel with nothing new, against a bare imaplib client doing the same round trips
  (TLS, LOGIN, SELECT, UID SEARCH, LOGOUT) in its own ``python -c``. Target: at most 2x
  ``python -c pass`` plus the round trips, i.e. ``(fetch - (bare - pass)) / pass <= 2``.
  The bare client trusts the channel's CA file alone; a second one loads the system trust
  store as well, as eddymail does (``--ca-file`` is added to the system store, never put in
  its place), and both ratios are printed.

``--instructions`` counts each case's instructions under valgrind (cachegrind) against
``python -c pass``'s: a ratio the machine's load does not move, for a busy machine.
``--imports`` prints the modules each case imports beyond ``python -c pass``, the heaviest of
them (``python -X importtime``, cumulative) and the import time itself by package (self time,
what is left to take away). This is a script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from childprocess import (
    Series,
    child_environment,
    compile_package,
    load_average,
    measure,
    mib,
    rss_note,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    """One command to measure, and the target it is held to."""

    label: str
    argv: tuple[str, ...]  # after the eddymail command
    target_ratio: float
    stdin: Callable[[int], bytes] | None = None  # run number -> what to feed
    rss_limit: int | None = None


def eddymail_command() -> list[str]:
    """The console script next to this interpreter (what cron runs), else ``-m eddymail``."""
    script = Path(sys.executable).with_name("eddymail")
    return [str(script)] if script.exists() else [sys.executable, "-m", "eddymail"]


def plain_message(number: int) -> bytes:
    """A small plain-text mail from a customer not seen before (so a ticket and a user)."""
    return (
        f"From: Customer {number} <customer{number}@customer.example>\r\n"
        "To: help@example.test\r\n"
        f"Subject: The printer on floor {number % 7} is jammed again\r\n"
        f"Message-ID: <startup-{number}-{os.getpid()}@customer.example>\r\n"
        "Date: Fri, 27 Nov 2026 09:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Hello,\r\n\r\nsince Monday the printer shows error 42 and nothing comes out.\r\n"
        "Could somebody have a look?\r\n\r\nThanks, a customer\r\n"
    ).encode()


class Workspace:
    """An isolated eddymail: its own HOME, XDG directories and SQLite database."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.environment = {key: value for key, value in child_environment(os.environ).items()
                            if not key.startswith("EDDYMAIL_")}
        self.environment.update(
            HOME=str(directory / "home"),
            XDG_CONFIG_HOME=str(directory / "config"),
            XDG_DATA_HOME=str(directory / "data"),
            EDDYMAIL_DATABASE_URL=f"sqlite:///{directory / 'eddymail.db'}",
            # Nothing here may reach a real keyring: channels use password commands, and a
            # keyring that is asked anyway fails loudly.
            PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
            NO_COLOR="1",
        )
        for name in ("home", "config", "data"):
            (directory / name).mkdir(parents=True, exist_ok=True)

    def run(self, *args: str) -> str:
        """Run ``eddymail ARGS`` (not measured); raise with its output when it fails."""
        completed = subprocess.run([*eddymail_command(), *args], env=self.environment,
                                   capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise RuntimeError(f"eddymail {' '.join(args)} exited {completed.returncode}:\n"
                               f"{completed.stdout}\n{completed.stderr}")
        return completed.stdout

    def prepare(self) -> None:
        """The database, a receiving-only channel and one that sends notifications."""
        password = self.directory / "smtp.password"
        password.write_text("secret\n")
        self.run("init")  # makes the Support department too
        # A department with no channel to send from: its new customers get no letter.
        self.run("department", "add", "Quiet")
        self.run("channel", "add", "plain", "--department", "Quiet",
                 "--email", "help@example.test", "--protocol", "none")
        # Support sends from "desk". Notifications are queued in the outbox, not sent: the
        # SMTP server need not exist.
        self.run("channel", "add", "desk", "--department", "Support",
                 "--email", "desk@example.test", "--protocol", "none",
                 "--smtp-host", "127.0.0.1", "--smtp-port", "2525", "--smtp-security", "none",
                 "--password-command", f"cat {shlex.quote(str(password))}")
        self.run("department", "edit", "Support", "--outgoing-channel", "desk")


def cases() -> list[Case]:
    """The start-up cases of issue 14 that need no mail server."""
    return [
        Case("eddymail --version", ("--version",), 3.0),
        Case("eddymail --help", ("--help",), 3.0),
        Case("eddymail -q ingest, plain text, no notification",
             ("-q", "ingest", "--channel", "plain"), 5.0, plain_message, 30 * MiB),
        Case("eddymail -q ingest, plain text, registration queued",
             ("-q", "ingest", "--channel", "desk"), 5.0,
             lambda number: plain_message(100_000 + number), 30 * MiB),
    ]


def measure_cases(workspace: Workspace, chosen: Sequence[Case], runs: int) -> tuple[
        Series, list[Series]]:
    """One warm-up round, then ``runs`` rounds of ``python -c pass`` followed by every case."""
    baseline = Series("python -c pass")
    series = [Series(case.label) for case in chosen]
    for round_number in range(runs + 1):
        measured = measure([sys.executable, "-c", "pass"], env=workspace.environment)
        if round_number:
            baseline.runs.append(measured)
        for case, results in zip(chosen, series, strict=True):
            stdin = case.stdin(round_number) if case.stdin else None
            measured = measure([*eddymail_command(), *case.argv], env=workspace.environment,
                               stdin=stdin)
            if round_number:
                results.runs.append(measured)
    return baseline, series


def print_table(baseline: Series, chosen: Sequence[Case], series: Sequence[Series]) -> None:
    """Medians, ratios to ``python -c pass`` and each target's verdict."""
    print(f"{'':<54} {'CPU':>8} {'wall':>8} {'peak RSS':>10}  ratio (CPU, wall)  target")
    print(f"{baseline.label:<54} {baseline.cpu * 1000:6.1f}ms {baseline.wall * 1000:6.1f}ms "
          f"{mib(baseline.max_rss):>10}")
    for case, results in zip(chosen, series, strict=True):
        cpu_ratio, wall_ratio = results.cpu / baseline.cpu, results.wall / baseline.wall
        verdicts = [f"<= {case.target_ratio:g}x " + ("met" if cpu_ratio <= case.target_ratio
                                                       else "MISSED")]
        if case.rss_limit is not None:
            verdicts.append(f"RSS < {mib(case.rss_limit)} "
                            + ("met" if results.max_rss < case.rss_limit else "MISSED"))
        print(f"{results.label:<54} {results.cpu * 1000:6.1f}ms {results.wall * 1000:6.1f}ms "
              f"{mib(results.max_rss):>10}  {cpu_ratio:5.2f}x {wall_ratio:5.2f}x      "
              + "; ".join(verdicts))


# --- fetch with nothing new (--imap) -------------------------------------------------------


_BARE_IMAP = """\
import imaplib, ssl, sys
context = ssl.create_default_context(cafile=sys.argv[3])
if sys.argv[6:] == ["system"]:  # the system trust store too, as eddymail's TLS rule has it
    context.load_default_certs()
imap = imaplib.IMAP4_SSL(sys.argv[1], int(sys.argv[2]), ssl_context=context, timeout=30)
imap.login(sys.argv[4], sys.argv[5])
imap.select("INBOX")
imap.uid("SEARCH", "UNSEEN")
imap.logout()
"""


def idle_fetch(directory: Path, runs: int) -> None:
    """``-q fetch`` of one IMAPS channel with nothing new, against the bare round trips.

    In a workspace of its own: the ingest cases left letters in the outbox that a fetch
    would try to send.
    """
    workspace = Workspace(directory)
    workspace.run("init")
    # A script's sys.path starts at bench/, so the harness in tests/ needs the root added.
    sys.path.insert(0, str(REPO_ROOT))
    from tests.harness.certs import make_pki
    from tests.harness.dovecot import start_dovecot

    dovecot_dir = Path(tempfile.mkdtemp(prefix="eddymail-bench-dovecot-"))
    server = start_dovecot(dovecot_dir, make_pki(workspace.directory / "pki"))
    try:
        user = server.create_user("idle")
        server.deliver(user, b"From: a@example.org\r\nSubject: old\r\n\r\nold mail\r\n")
        password = workspace.directory / "imap.password"
        password.write_text(user.password + "\n")
        workspace.run("channel", "add", "idle", "--department", "Support",
                      "--email", user.address, "--login", user.login, "--protocol", "imap",
                      "--host", server.host, "--port", str(server.imaps_port),
                      "--security", "ssl", "--ca-file", str(server.pki.ca_file),
                      "--password-command", f"cat {shlex.quote(str(password))}")
        workspace.run("-q", "fetch", "idle", "--initial", "all")  # takes the old mail
        bare_argv = [sys.executable, "-c", _BARE_IMAP, server.host, str(server.imaps_port),
                     str(server.pki.ca_file), user.login, user.password]
        baseline, fetch = Series("python -c pass"), Series("fetch")
        bare, trusting = Series("bare"), Series("bare, system trust store")
        for round_number in range(runs + 1):
            results = (measure([sys.executable, "-c", "pass"], env=workspace.environment),
                       measure(bare_argv, env=workspace.environment),
                       measure([*bare_argv, "system"], env=workspace.environment),
                       measure([*eddymail_command(), "-q", "fetch", "idle"],
                               env=workspace.environment))
            if round_number:
                for series, result in zip((baseline, bare, trusting, fetch), results,
                                          strict=True):
                    series.runs.append(result)
        print(f"\n-q fetch, one IMAPS channel, nothing new (median of {runs}):")
        print(f"  python -c pass          {baseline.cpu * 1000:6.1f}ms CPU "
              f"{baseline.wall * 1000:6.1f}ms wall")
        print(f"  bare imaplib client     {bare.cpu * 1000:6.1f}ms CPU {bare.wall * 1000:6.1f}ms"
              f" wall (python start-up + imaplib/ssl + TLS, LOGIN, SELECT, UID SEARCH, LOGOUT;"
              f" trusting the channel's CA file alone)")
        print(f"  the same, system store  {trusting.cpu * 1000:6.1f}ms CPU "
              f"{trusting.wall * 1000:6.1f}ms wall (the system trust store loaded as well: "
              f"eddymail adds --ca-file to it, never replaces it)")
        print(f"  eddymail -q fetch       {fetch.cpu * 1000:6.1f}ms CPU {fetch.wall * 1000:6.1f}ms"
              f" wall, peak RSS {mib(fetch.max_rss)}")
        for label, client in (("bare client", bare), ("bare client with the system store",
                                                      trusting)):
            round_trips = client.wall - baseline.wall
            ratio = (fetch.wall - round_trips) / baseline.wall
            print(f"  against the {label}: (fetch - round trips) / pass = "
                  f"({fetch.wall * 1000:.1f} - {round_trips * 1000:.1f}) / "
                  f"{baseline.wall * 1000:.1f} = {ratio:.2f}x wall; CPU "
                  f"{fetch.cpu / baseline.cpu:.2f}x pass, {fetch.cpu / client.cpu:.2f}x the client "
                  f"(target <= 2x: {'met' if ratio <= 2 else 'MISSED'})")
    finally:
        server.stop()
        shutil.rmtree(dovecot_dir, ignore_errors=True)


# --- instructions (--instructions) ------------------------------------------------------------


def print_instructions(workspace: Workspace, chosen: Sequence[Case]) -> None:
    """Each case's instruction count under valgrind (cachegrind, ``Ir``), next to
    ``python -c pass``'s: a ratio that does not move with the machine's load (CPU time also
    counts the kernel's work and cache misses, which this does not)."""
    if shutil.which("valgrind") is None:
        print("\n--instructions: valgrind is not installed")
        return

    def instructions(argv: Sequence[str], stdin: bytes | None) -> int:
        completed = subprocess.run(
            ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
             *argv], env=workspace.environment, input=stdin, capture_output=True, check=False)
        found = re.search(rb"I\s+refs:\s+([\d,]+)", completed.stderr)
        if completed.returncode != 0 or found is None:
            raise RuntimeError(f"valgrind {' '.join(argv)} failed: {completed.stderr[-500:]!r}")
        return int(found.group(1).replace(b",", b""))

    baseline = instructions([sys.executable, "-c", "pass"], None)
    print(f"\ninstructions (valgrind cachegrind, one run each): python -c pass "
          f"{baseline / 1e6:.1f}M")
    for number, case in enumerate(chosen):
        stdin = case.stdin(20_000 + number) if case.stdin else None
        count = instructions([*eddymail_command(), *case.argv], stdin)
        print(f"  {case.label:<54} {count / 1e6:7.1f}M  {count / baseline:5.2f}x")


# --- what each case imports (--imports) -----------------------------------------------------


def print_imports(workspace: Workspace, chosen: Sequence[Case], top: int = 12) -> None:
    """Modules imported beyond ``python -c pass``, and the heaviest by cumulative time."""
    selves: dict[str, int] = {}  # the last case's self times

    def imported(argv: Sequence[str], stdin: bytes | None) -> dict[str, int]:
        completed = subprocess.run([sys.executable, "-X", "importtime", *argv],
                                   env=workspace.environment, input=stdin,
                                   capture_output=True, check=False)
        found = {}
        selves.clear()
        for line in completed.stderr.decode(errors="replace").splitlines():
            match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|\s*(\S+)", line)
            if match:
                found[match.group(3)] = int(match.group(2))
                selves[match.group(3)] = int(match.group(1))
        return found

    baseline = imported(["-c", "pass"], None)
    for case in chosen:
        stdin = case.stdin(10_000 + chosen.index(case)) if case.stdin else None
        modules = imported(["-m", "eddymail", *case.argv], stdin)
        extra = {name: time for name, time in modules.items() if name not in baseline}
        top_level = sorted({name.split(".")[0] for name in extra})
        print(f"\n{case.label}: {len(extra)} modules beyond python -c pass")
        print("  packages: " + ", ".join(top_level))
        heaviest = sorted(extra.items(), key=lambda item: -item[1])[:top]
        print("  heaviest (cumulative): " + ", ".join(
            f"{name} {microseconds / 1000:.1f}ms" for name, microseconds in heaviest))
        by_package: dict[str, int] = {}
        for name, microseconds in selves.items():
            if name in extra:
                parts = name.split(".")
                package = ".".join(parts[:3] if parts[0] == "eddymail" else parts[:1])
                by_package[package] = by_package.get(package, 0) + microseconds
        print(f"  self time by package ({sum(by_package.values()) / 1000:.1f}ms in all): "
              + ", ".join(f"{package} {microseconds / 1000:.1f}ms" for package, microseconds
                          in sorted(by_package.items(), key=lambda item: -item[1])[:top * 2]))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the cases and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="measured rounds (default 15)")
    parser.add_argument("--imap", action="store_true",
                        help="also -q fetch with nothing new (starts a private Dovecot)")
    parser.add_argument("--instructions", action="store_true",
                        help="also count each case's instructions under valgrind (load-free)")
    parser.add_argument("--imports", action="store_true",
                        help="also list what each case imports beyond python -c pass")
    options = parser.parse_args(argv)

    directory = Path(tempfile.mkdtemp(prefix="eddymail-bench-startup-"))
    compile_package(REPO_ROOT / "eddymail")
    try:
        workspace = Workspace(directory)
        workspace.prepare()
        chosen = cases()
        print(f"eddymail start-up, Python {sys.version.split()[0]}; {load_average()} at the "
              f"start; median of {options.runs} rounds; {rss_note()}")
        baseline, series = measure_cases(workspace, chosen, options.runs)
        print_table(baseline, chosen, series)
        listed = json.loads(workspace.run("--json", "ticket", "list", "--status", "all",
                                          "--limit", "1000"))
        queued = json.loads(workspace.run("--json", "outbox", "list"))
        print(f"(ingest made {len(listed['tickets'])} tickets and queued "
              f"{len(queued['outbox'])} notifications; {load_average()} at the end)")
        if options.imap:
            idle_fetch(directory / "imap", options.runs)
        if options.instructions:
            print_instructions(workspace, chosen)
        if options.imports:
            print_imports(workspace, chosen)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
