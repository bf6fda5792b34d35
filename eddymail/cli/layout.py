"""Laying out what ``cli/output.py`` shows: column widths, screen widths, short times.

Plain functions without rich, so the table a pipe gets and the one rich draws on a terminal
are measured the same way.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import TextIO


def local_time(moment: datetime) -> str:
    """A stored (naive UTC) time in the reader's local zone, to the minute."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return aware.astimezone().strftime("%Y-%m-%d %H:%M")


def short_age(moment: datetime, now: datetime | None = None) -> str:
    """How long ago, in at most 7 characters: ``now``, ``5m``, ``3h``, ``6d``, ``27 Nov``,
    ``2024-11`` (older than a week: the local date, the month of an earlier year)."""
    aware = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    now = now or datetime.now(UTC)
    elapsed = now - aware
    if elapsed < timedelta(minutes=1):
        return "now"
    if elapsed < timedelta(hours=1):
        return f"{elapsed.seconds // 60}m"
    if elapsed < timedelta(days=1):
        return f"{elapsed.seconds // 3600}h"
    if elapsed < timedelta(days=7):
        return f"{elapsed.days}d"
    local = aware.astimezone()
    if local.year == now.astimezone().year:
        return f"{local.day} {local:%b}"
    return f"{local:%Y-%m}"


def fit_widths(naturals: list[int], available: int) -> list[int]:
    """Column widths that fit ``available``: narrow columns keep their width, the widest
    ones are cut down to one common cap (so numbers and statuses never vanish)."""
    if sum(naturals) <= available:
        return naturals
    cap = max(naturals)
    while cap > 4 and sum(min(width, cap) for width in naturals) > available:
        cap -= 1
    return [min(width, cap) for width in naturals]


def share_widths(naturals: list[int], shares: list[int], available: int) -> list[int]:
    """Widths where the columns with a share split what the fixed ones leave over.

    A growing column never gets more than it needs; what it leaves goes to the others.
    When even the fixed columns do not fit, ``fit_widths`` decides.
    """
    fixed = sum(width for width, share in zip(naturals, shares, strict=True) if not share)
    room = available - fixed
    growing = [index for index, share in enumerate(shares) if share]
    if room < 8 * len(growing):
        return fit_widths(naturals, available)
    widths = list(naturals)
    while growing:
        total = sum(shares[index] for index in growing)
        offered = {index: room * shares[index] // total for index in growing}
        satisfied = [index for index in growing if naturals[index] <= offered[index]]
        if not satisfied:
            for index in growing:
                widths[index] = offered[index]
            break
        for index in satisfied:
            widths[index] = naturals[index]
            room -= naturals[index]
            growing.remove(index)
    return widths


def plain_width() -> int:
    """The width rich's console takes when it writes to a pipe or a file."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        return int(columns)
    for descriptor in (0, 1, 2):  # e.g. ``ticket list | less`` at a terminal
        try:
            return os.get_terminal_size(descriptor).columns or 80
        except (AttributeError, ValueError, OSError):
            continue
    return 80


def shows_styles(stream: TextIO) -> bool:
    """Whether rich would treat ``stream`` as a terminal (``Console.is_terminal``)."""
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    force_color = os.environ.get("FORCE_COLOR")
    if force_color is not None:
        return force_color != ""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed (rich answers False too)
        return False
