"""IMAP IDLE (RFC 2177) on an :class:`~eddymail.mail.wire.imapconnection.ImapConnection`.

imaplib (before Python 3.14) has no IDLE: the command is spoken here with the connection's
``send`` and ``readline`` and its stream's ``wait_readable``. IDLE is a command whose
answer is a continuation (``+ idling``) followed by untagged news until the client sends
``DONE``; only then does the tagged answer come. Each wait is bounded: the caller re-IDLEs
well before the 30 minutes after which a server may drop an idle client (RFC 2177 asks
clients to re-issue at least every 29).
"""

from __future__ import annotations

import imaplib
import itertools
import re
import time
from collections.abc import Callable

from eddymail.mail.wire.imapconnection import ImapConnection
from eddymail.patterns import LazyPattern

# How long one wait for the server lasts before ``stop()`` is asked again.
_TICK = 1.0
# Untagged news that means "mail arrived": "* 12 EXISTS", "* 1 RECENT".
_ARRIVAL = LazyPattern(rb"^\* \d+ (EXISTS|RECENT)\b", re.IGNORECASE)
_tags = itertools.count(1)


def idle_until_announced(imap: ImapConnection, seconds: float,
                         stop: Callable[[], bool]) -> bool:
    """IDLE until mail is announced (True), ``seconds`` pass or ``stop()`` (False).

    Raises ``imaplib.IMAP4.error`` when the server refuses IDLE, ``imaplib.IMAP4.abort`` when
    it ends the session (``BYE``, end of stream), ``OSError`` on a broken connection.
    """
    tag = b"EDDYI%d" % next(_tags)
    imap.send(tag + b" IDLE\r\n")
    while True:  # until the continuation; news may come first
        line = _line(imap)
        if line.startswith(b"+"):
            break
        if line.startswith(tag + b" "):
            raise imaplib.IMAP4.error(f"IDLE refused: {line.decode('utf-8', 'replace')}")
    announced = False
    ends = time.monotonic() + seconds
    while not announced and not stop():
        left = ends - time.monotonic()
        if left <= 0:
            break
        if imap.stream.wait_readable(min(left, _TICK)):
            announced = bool(_ARRIVAL.match(_line(imap)))
    imap.send(b"DONE\r\n")
    while True:  # news may still come before the tagged answer
        line = _line(imap)
        if line.startswith(tag + b" "):
            if not line[len(tag) + 1:].upper().startswith(b"OK"):
                raise imaplib.IMAP4.error(f"IDLE failed: {line.decode('utf-8', 'replace')}")
            return announced
        announced = announced or bool(_ARRIVAL.match(line))


def _line(imap: imaplib.IMAP4) -> bytes:
    line = imap.readline()
    if not line:
        raise imaplib.IMAP4.abort("the server closed the connection")
    if line.upper().startswith(b"* BYE"):
        raise imaplib.IMAP4.abort(line.decode("utf-8", "replace").strip())
    return line
