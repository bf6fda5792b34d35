"""What the first fetch of a channel takes of the mail already in its mailbox.

``--initial`` of ``channel add``, ``fetch`` and ``watch``, and the choice stored with the
channel. Apart from the channel drafts (``eddymail.services.channels.drafts``): a fetch reads
the choice, and need not load the drafts' settings to do so (issue 14).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from eddymail.errors import ValidationError
from eddymail.patterns import LazyPattern

INITIAL_ALL = -1
INITIAL_NONE = 0


@dataclass(frozen=True)
class FirstImport:
    """What the first fetch of a channel takes of the mail already there.

    The last ``limit`` unread messages (``INITIAL_ALL``: every unread one, ``INITIAL_NONE``:
    none), or with ``since`` every message that arrived on or after that day, read or not.
    """

    limit: int
    since: date | None = None


POP3_HAS_NO_DATES = ("POP3 servers do not say when mail arrived, so a POP3 channel cannot "
                     "start 'since' a date: use --initial N, all or none.")
_SINCE = LazyPattern(r"since[\s:=]+(\d{4}-\d{2}-\d{2})")


def parse_initial(text: str) -> FirstImport:
    """``--initial``: a number of messages, ``all``, ``none`` or ``since YYYY-MM-DD``."""
    value = text.strip().lower()
    if value == "all":
        return FirstImport(INITIAL_ALL)
    if value == "none":
        return FirstImport(INITIAL_NONE)
    if value.isdigit():
        return FirstImport(int(value))
    match = _SINCE.fullmatch(value)
    if match:
        try:
            return FirstImport(INITIAL_ALL, date.fromisoformat(match.group(1)))
        except ValueError:
            pass
    raise ValidationError(
        f"--initial must be a number, 'all', 'none' or 'since YYYY-MM-DD', not '{text}'.")


def format_initial(limit: int, since: date | None = None) -> str:
    """The stored first-import choice as typed: ``100``, ``all``, ``none``, ``since DATE``."""
    if since is not None:
        return f"since {since.isoformat()}"
    return {INITIAL_ALL: "all", INITIAL_NONE: "none"}.get(limit, str(limit))
