"""How fast ``eddymail fetch`` takes mail in, against a bare loop over the same mailbox.

Run from the repository root (Dovecot must be installed; it needs root, like the tests)::

    .venv/bin/python bench/fetch_throughput.py [--case small|attachments|all]
        [--protocol imap|pop3|both] [--rounds R] [--profile]
    .venv/bin/python bench/fetch_throughput.py --parse-only   # (c) alone: no Dovecot, no root

It starts a private Dovecot (``tests.harness``) and seeds one mailbox per case straight into
its Maildir: **small**, 2,000 messages of 5 KB text (``--messages``), and **attachments**,
200 messages of 5 KB text with a 200 KB attachment each (``--attachment-messages``). For each
case and protocol it prints:

* (a) a bare loop, no database: IMAP: imaplib over IMAPS, ``UID FETCH (BODY.PEEK[])`` in
  batches of 50; POP3: poplib over POP3S, ``RETR`` of each message; then
  ``email.message_from_bytes(policy=default)`` per message;
* (b) ``eddymail -q fetch --initial all`` of the same mailbox into an empty SQLite database,
  as cron would run it (a child process, start-up included);
* their rates and the ratio b/a (target of issue 14: at least 1.0). (a) and (b) take turns
  ``--rounds`` times (default 3); each (b) runs into a new database after an untimed
  ``sync`` with the previous one removed (else the kernel writes back the last turn's
  database during the next one); medians are compared and each turn's times printed, with
  the machine's load average before and after.

Then, unless ``--quick``: (c) parsing alone (``parse_message`` against the stdlib parse, in
this process, CPU time per message); the wall time of ``-q fetch`` with nothing new on 3
channels; the peak RSS of fetching one message with a 50 MB attachment next to one small
message. ``--profile`` runs (b) once more under cProfile and prints the top functions.
Everything it starts is removed at the end. It prints figures; it asserts no speed.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import io
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from childprocess import Measurement, load_average, mib
from mailboxes import (  # (also puts the repository root on sys.path for tests.harness)
    Workspace,
    imap_session,
    make_message,
    pop3_session,
    seed_maildir,
)

from eddymail.mail.message.parse import parse_message
from tests.harness.certs import make_pki
from tests.harness.dovecot import DovecotServer, MailUser, start_dovecot

BATCH = 50
ATTACHMENT_BYTES = 200 * 1024
BIG_ATTACHMENT_BYTES = 50 * 1024 * 1024
TARGET_RATIO = 1.0


@dataclass(frozen=True)
class Case:
    """A mailbox to fetch: its name and its messages."""

    name: str
    description: str
    messages: list[bytes]


# --- (a) the bare loops -----------------------------------------------------------------------


def bare_imap(server: DovecotServer, user: MailUser) -> int:
    """UID FETCH BODY.PEEK[] in batches of 50 and parse each message; the count."""
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
    return count


def bare_pop3(server: DovecotServer, user: MailUser) -> int:
    """RETR every message and parse it; the count."""
    count = 0
    with pop3_session(server, user) as pop:
        messages, _ = pop.stat()
        for number in range(1, messages + 1):
            _, lines, _ = pop.retr(number)
            email.message_from_bytes(b"\r\n".join(lines) + b"\r\n", policy=email.policy.default)
            count += 1
    return count


BARE_LOOPS: dict[str, Callable[[DovecotServer, MailUser], int]] = {
    "imap": bare_imap, "pop3": bare_pop3}


# --- (b) eddymail as cron runs it -------------------------------------------------------------


def eddymail_fetch(server: DovecotServer, mailbox: MailUser, protocol: str, directory: Path,
                   count: int, profile: Path | None = None) -> Measurement:
    """``eddymail -q fetch --initial all`` of the whole mailbox into an empty database."""
    # An earlier turn marked everything read; unread again, so --initial all takes it all.
    server.set_flags(mailbox, ["\\Seen"], add=False)
    workspace = Workspace(directory)
    workspace.add_channel(server, mailbox, "bench", protocol)
    os.sync()  # what earlier turns wrote is on disk, not written back during this one
    fetch = workspace.measured("-q", "fetch", "--initial", "all", profile=profile)
    tickets = workspace.count("ticket")
    if tickets != count:
        raise RuntimeError(f"eddymail made {tickets} tickets of {count} messages")
    shutil.rmtree(directory)  # up to 100 MB of database per turn; the next starts afresh
    return fetch


def compare(server: DovecotServer, case: Case, mailbox: MailUser, protocol: str,
            scratch: Path, rounds: int) -> float:
    """(a) and (b) in turns; print the figures and return the ratio of the rates."""
    count = len(case.messages)
    bare_times: list[float] = []
    bare_cpu: list[float] = []
    fetches: list[Measurement] = []
    load_before = load_average()
    for turn in range(rounds):
        started, cpu_started = time.perf_counter(), time.process_time()
        taken = BARE_LOOPS[protocol](server, mailbox)
        bare_times.append(time.perf_counter() - started)
        bare_cpu.append(time.process_time() - cpu_started)
        if taken != count:
            raise RuntimeError(f"the bare loop saw {taken} messages, {count} were seeded")
        fetches.append(eddymail_fetch(server, mailbox, protocol, scratch / f"turn{turn}", count))
    bare_seconds = statistics.median(bare_times)
    fetch_seconds = statistics.median(fetch.wall for fetch in fetches)
    ratio = bare_seconds / fetch_seconds
    # CPU time is the figure a busy machine disturbs least (Dovecot's own is in neither).
    bare_cpu_seconds = statistics.median(bare_cpu)
    fetch_cpu_seconds = statistics.median(fetch.cpu for fetch in fetches)
    each = ", ".join(f"{bare:.2f}/{fetch.wall:.2f}"
                     for bare, fetch in zip(bare_times, fetches, strict=True))
    verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
    print(f"\n{case.name}, {protocol.upper()}: {case.description}")
    print(f"  (a) bare loop:       {bare_seconds:7.2f} s  {count / bare_seconds:7.1f} messages/s"
          f"  (CPU {bare_cpu_seconds:.2f} s)")
    print(f"  (b) eddymail fetch:  {fetch_seconds:7.2f} s  {count / fetch_seconds:7.1f} "
          f"messages/s  (CPU {fetch_cpu_seconds:.2f} s, peak RSS "
          f"{mib(max(f.max_rss for f in fetches))}, start-up included)")
    print(f"  ratio b/a: {ratio:.2f} ({verdict} the target of {TARGET_RATIO}); seconds per "
          f"turn (a)/(b): {each}; medians of {rounds}")
    print(f"  CPU ratio a/b: {bare_cpu_seconds / fetch_cpu_seconds:.2f} (the bare loop's CPU "
          "time over eddymail's: what the rate ratio would be if CPU were the only limit)")
    print(f"  {load_before} before, {load_average()} after")
    return ratio


# --- (c) and the rest -------------------------------------------------------------------------


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
    times = [workspace.measured("-q", "fetch").wall for _ in range(runs)]
    version = workspace.measured("--version").wall
    print(f"\nnothing new, 3 channels: eddymail -q fetch median {statistics.median(times):.2f} s "
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
              f"peak RSS {mib(measured.max_rss)}, {measured.wall:.2f} s, {status}")
    big, small = results["50 MB attachment"].max_rss, results["small"].max_rss
    ratio, extra = big / small, big - small
    print(f"    peak RSS ratio 50 MB / small: {ratio:.1f}x (+{mib(extra)}, i.e. "
          f"{extra / BIG_ATTACHMENT_BYTES:.1f} x the attachment size)")


def print_profile(output: Path) -> None:
    """The top functions of a cProfile dump, by own and by cumulative time."""
    for sort in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(str(output), stream=text).strip_dirs().sort_stats(sort).print_stats(25)
        print(f"\n--- cProfile of eddymail fetch, top 25 by {sort} ---")
        print(text.getvalue().split("\n\n", 1)[-1].rstrip())


# --- main -------------------------------------------------------------------------------------


def build_cases(options: argparse.Namespace) -> list[Case]:
    """The chosen mailboxes, built with a seeded random text."""
    rng = random.Random(options.seed)
    cases = []
    if options.case in ("small", "all"):
        cases.append(Case("small", f"{options.messages} messages of 5 KB text",
                          [make_message(n, rng) for n in range(options.messages)]))
    if options.case in ("attachments", "all"):
        cases.append(Case("attachments", f"{options.attachment_messages} messages of 5 KB "
                          "text with a 200 KB attachment each",
                          [make_message(n, rng, ATTACHMENT_BYTES)
                           for n in range(options.attachment_messages)]))
    return cases


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=("small", "attachments", "all"), default="all")
    parser.add_argument("--protocol", choices=("imap", "pop3", "both"), default="both")
    parser.add_argument("--messages", type=int, default=2000,
                        help="messages in the small case (default 2000)")
    parser.add_argument("--attachment-messages", type=int, default=200,
                        help="messages in the attachments case (default 200)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="turns of (a) then (b); medians are compared (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="random seed for the message text")
    parser.add_argument("--profile", action="store_true",
                        help="also profile eddymail fetch of each case with cProfile")
    parser.add_argument("--quick", action="store_true",
                        help="only the ratios: no (c), idle fetch or peak memory")
    parser.add_argument("--parse-only", action="store_true",
                        help="only (c), parsing in this process: needs no Dovecot")
    options = parser.parse_args(argv)
    cases = build_cases(options)
    print(f"eddymail fetch throughput; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; "
          f"{load_average()}")
    if options.parse_only:
        for case in cases:
            print(f"\n{case.name}: {case.description}")
            parse_only(case.messages, options.rounds)
        return 0
    protocols = ("imap", "pop3") if options.protocol == "both" else (options.protocol,)
    scratch = Path(tempfile.mkdtemp(prefix="eddymail-bench-"))
    # Dovecot's mail processes run as 'nobody' and must reach the homes: a /tmp dir of its own.
    dovecot_dir = Path(tempfile.mkdtemp(prefix="eddymail-bench-dovecot-"))
    server: DovecotServer | None = None
    try:
        server = start_dovecot(dovecot_dir, make_pki(scratch / "pki"))
        for case in cases:
            mailbox = server.create_user(f"bench-{case.name}")
            started = time.perf_counter()
            seed_maildir(server, mailbox, case.messages)
            print(f"\n[{case.name}: seeded {mib(sum(map(len, case.messages)))} in "
                  f"{time.perf_counter() - started:.1f} s, not timed below]")
            for protocol in protocols:
                compare(server, case, mailbox, protocol, scratch, options.rounds)
                if options.profile:
                    output = scratch / "fetch.prof"
                    eddymail_fetch(server, mailbox, protocol, scratch / "profile",
                                   len(case.messages), profile=output)
                    print_profile(output)
        if not options.quick:
            print()
            for case in cases:
                print(f"{case.name}: {case.description}")
                parse_only(case.messages, options.rounds)
            idle_fetch(server, scratch)
            peak_memory(server, scratch, random.Random(options.seed))
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(dovecot_dir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
