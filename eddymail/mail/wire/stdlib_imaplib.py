"""The one private part of imaplib that eddymail touches: the command log.

Why it must stay: imaplib (unless Python runs with ``-O``) keeps the last ten command lines
in ``IMAP4._cmd_log`` for ``print_log()``, and a LOGIN line carries the password in the
clear. There is no public way to keep a command out of that log or to empty it, and the
imaplib object lives as long as the session. So :func:`forget_command_log` empties it right
after the login. ``tests/test_stdlib_adapters.py`` fails when a Python release moves or
renames the log (the password would then still be found on the object after the login).

Everything else eddymail needs from imaplib is public: ``open``/``read``/``readline``/
``send``/``shutdown``/``socket`` are documented as overridable, STARTTLS goes through
``xatom`` and response codes through ``response``.
"""

from __future__ import annotations

import imaplib


def forget_command_log(imap: imaplib.IMAP4) -> None:
    """Empty imaplib's log of recent command lines (where LOGIN left the password)."""
    log = getattr(imap, "_cmd_log", None)
    if isinstance(log, dict):
        log.clear()
