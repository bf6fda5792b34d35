"""Rules for names people type: departments and channels."""

from __future__ import annotations

import unicodedata

from eddymail.errors import ValidationError
from eddymail.patterns import LazyPattern

CHANNEL_NAME = LazyPattern(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_DEPARTMENT_NAME = 100


def channel_name(name: str) -> str:
    """A channel name: short, ASCII, no spaces, since it is typed in cron lines and scripts."""
    name = name.strip()
    if not CHANNEL_NAME.match(name):
        raise ValidationError(
            f"Channel name '{printable(name)}' is not allowed: use 1-64 letters, digits, "
            "dots, dashes or underscores, starting with a letter or digit (e.g. support)."
        )
    return name


def department_name(name: str) -> str:
    """A department name: any language, trimmed, one line, no control characters."""
    cleaned = " ".join(name.split())
    if not cleaned or any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise ValidationError("A department name must be non-empty text on one line.")
    if len(cleaned) > MAX_DEPARTMENT_NAME:
        raise ValidationError(
            f"A department name may have at most {MAX_DEPARTMENT_NAME} characters."
        )
    return cleaned


def printable(text: str) -> str:
    """``text`` with control characters shown as escapes, for error messages."""
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
