"""Text a command takes from a person or a script: -m, -F FILE (``-``: stdin), or a pipe."""

from __future__ import annotations

import sys
from pathlib import Path

import click


def given_text(message: str | None, file: str | None) -> str | None:
    """The text from -m, -F or piped stdin; None when a person should write it in $EDITOR."""
    if message is not None and file is not None:
        raise click.UsageError("Give either -m or -F, not both.")
    if message is not None:
        return message
    if file is not None:
        if file == "-":
            return sys.stdin.read()
        try:
            return Path(file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise click.UsageError(f"Cannot read {file}: {error}") from None
    if not sys.stdin.isatty():
        return sys.stdin.read()
    return None
