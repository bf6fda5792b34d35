"""Deterministic crash points, for the tests that prove a crash never loses or doubles mail.

With ``EDDYMAIL_CRASH_AT=N`` in the environment the process exits abruptly (``os._exit``, no
clean-up, like ``kill -9``) at the N-th crash point it passes; the tests run a fetch with
N = 1, 2, 3, ... each followed by a normal run, and compare the end state with an
uninterrupted run. ``EDDYMAIL_CRASH_AT=NAME`` (a step name, below) exits at the first point
of that name instead. With ``EDDYMAIL_CRASH_LOG=FILE`` every crash point passed is appended to
FILE as ``N name``, so a test learns from one uninterrupted run how many steps there are
and which step each N is. Without either variable a crash point costs two dictionary
lookups.

Where the points are (a fetch): after the first connection's bookkeeping is committed
(``imap connected``, ``pop3 connected``), after each download (``... downloaded``) and each
commit (``... committed``), between marking a message deleted and expunging it (``imap
deleted flag set``), after the server was told (``imap server told``, each ``pop3 dele
sent``, ``pop3 quit``) and after the ledger noted it (``imap flagged``); in ingestion once a
message's ticket change is written but not yet committed (``ingest stored``) and after
each piece of a big blob (``blob written in part``); and in the
outbox once a mail is claimed (``outbox claimed``), once DATA is about to begin (``outbox
data started``) and once the SMTP server accepted a mail (``outbox accepted``).

Step hooks, for tests that arrange a race between processes without sleeping: with
``EDDYMAIL_PAUSE_AT=NAME`` and ``EDDYMAIL_PAUSE_DIR=DIR`` the process stops at the first
point of that name, creates ``DIR/NAME.reached`` and waits until ``DIR/NAME.go`` exists
(spaces in NAME are written as dashes), then goes on.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

CRASH_ENV = "EDDYMAIL_CRASH_AT"
CRASH_LOG_ENV = "EDDYMAIL_CRASH_LOG"
CRASH_EXIT_CODE = 86
PAUSE_ENV = "EDDYMAIL_PAUSE_AT"
PAUSE_DIR_ENV = "EDDYMAIL_PAUSE_DIR"
# A paused process goes on by itself after this long, so a failed test leaves no orphan.
PAUSE_LIMIT = 120.0

_passed = 0


def crash_point(name: str) -> None:
    """Exit here if this is the crash point the environment asks for."""
    target = os.environ.get(CRASH_ENV)
    log = os.environ.get(CRASH_LOG_ENV)
    if os.environ.get(PAUSE_ENV) == name:
        _pause(name)
    if not target and not log:
        return
    global _passed
    _passed += 1
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{_passed} {name}\n")
    if target and (_passed == int(target) if target.isdigit() else name == target):
        sys.stderr.write(f"eddymail: simulated crash at point {_passed} ({name})\n")
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)


_paused: set[str] = set()


def _pause(name: str) -> None:
    """Announce that this step is reached, and wait for the test to let it go on (once)."""
    directory = os.environ.get(PAUSE_DIR_ENV)
    if not directory or name in _paused:
        return
    _paused.add(name)
    stem = Path(directory) / name.replace(" ", "-")
    stem.with_name(stem.name + ".reached").write_text(str(os.getpid()))
    release = stem.with_name(stem.name + ".go")
    ends = time.monotonic() + PAUSE_LIMIT
    while not release.exists() and time.monotonic() < ends:
        time.sleep(0.01)
