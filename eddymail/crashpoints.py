"""Deterministic crash points, for the tests that prove a crash never loses or doubles mail.

With ``EDDYMAIL_CRASH_AT=N`` in the environment the process exits abruptly (``os._exit``, no
clean-up, like ``kill -9``) at the N-th crash point it passes; the tests run a fetch with
N = 1, 2, 3, ... each followed by a normal run, and compare the end state with an
uninterrupted run. Without the variable a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import sys

CRASH_ENV = "EDDYMAIL_CRASH_AT"
CRASH_EXIT_CODE = 86

_passed = 0


def crash_point(name: str) -> None:
    """Exit here if this is the crash point the environment asks for."""
    target = os.environ.get(CRASH_ENV)
    if not target:
        return
    global _passed
    _passed += 1
    if _passed == int(target):
        sys.stderr.write(f"eddymail: simulated crash at point {_passed} ({name})\n")
        sys.stderr.flush()
        os._exit(CRASH_EXIT_CODE)
