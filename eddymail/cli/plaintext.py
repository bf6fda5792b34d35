"""Results as text without rich: tables and "name: value" views for a pipe or a file, and
the JSON form of results.

``cli/output.py`` decides where a result goes and draws it with rich for a person at a
terminal; what goes to a pipe or a file (cron, a mail server running ``ingest``,
``ticket list | grep``) is laid out here as exactly the text rich would write there
(``tests/test_plain_output.py`` compares them), so those runs do not import rich. Only
``cli/output.py`` imports rich: it hands in rich's own character widths (a ``Ruler``) for
text outside ASCII.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, TextIO

from eddymail.cli.layout import local_time
from eddymail.safetext import for_terminal


def to_jsonable(value: Any) -> Any:
    """Dataclasses, datetimes, tuples and sets turned into plain JSON values.

    A field named with a trailing underscore (``from_``, a Python keyword) gets its JSON
    name without it (``from``).
    """
    if value is None or isinstance(value, str | int | float):  # most values: first
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {key: to_jsonable(getattr(value, name))
                for name, key in _json_names(type(value))}
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return iso_utc(value)
    return value


@functools.cache
def _json_names(kind: type) -> tuple[tuple[str, str], ...]:
    """(attribute, JSON key) of each field of a dataclass (asked once per class: ``ticket
    show --json`` of a long thread converts thousands)."""
    return tuple((f.name, f.name.removesuffix("_")) for f in dataclasses.fields(kind))


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``; naive datetimes are taken as UTC (as stored)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat() + "Z"


@dataclasses.dataclass(frozen=True)
class Styled:
    """A table cell of styled pieces, each shown safely; ``"\\n"`` pieces break the line.

    For cells the command composes (a subject with its search snippet below it) without
    being able to import rich.
    """

    pieces: tuple[tuple[str, str], ...]  # (text, style)


def cell_text(value: Any) -> str:
    """The text of ``cell(value)`` without its styles: what a pipe or a file gets."""
    if value is None:
        return ""
    if isinstance(value, Styled):
        return "".join("\n" if piece == "\n" else for_terminal(piece, multiline=False)
                       for piece, _ in value.pieces)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return local_time(value)
    return for_terminal(value, multiline=False)


class Ruler(NamedTuple):
    """How many terminal cells text takes, as rich counts them. Shown text is escaped
    (``safetext``): ASCII in it is printable, one cell a character, so only other text
    needs rich's tables of character widths (``cell_len`` and ``set_cell_size`` of
    ``rich.cells``, handed in by ``cli/output.py``)."""

    cell_len: Callable[[str], int]
    set_cell_size: Callable[[str, int], str]

    def cells(self, text: str) -> int:
        """How many terminal cells ``text`` (one line, escaped) takes."""
        return len(text) if text.isascii() else self.cell_len(text)

    def sized(self, text: str, width: int) -> str:
        """``text`` cut or padded with spaces to ``width`` cells, as rich does it."""
        if text.isascii():
            return text[:max(width, 0)].ljust(width)
        return self.set_cell_size(text, width)


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]],
                widths: Sequence[int], ruler: Ruler) -> str:
    """The table ``Output.table`` draws with rich, as rich writes it to a pipe or a file:
    cells cut to their column's width with "…", three spaces between columns, a rule under
    the headers, a multi-line cell making its row as high. Widths are terminal cells, so
    wide (CJK) and combining characters line up."""
    def fitted(text: str, width: int) -> str:
        if ruler.cells(text) > width:
            text = ruler.sized(text, width - 1) + "…"
        return ruler.sized(text, width)

    lines: list[str] = []
    for number, row in enumerate([headers, *rows]):
        cells = [text.split("\n") for text in row]
        for index in range(max(len(lines_of_cell) for lines_of_cell in cells)):
            lines.append("   ".join(
                fitted(cell_lines[index] if index < len(cell_lines) else "", width)
                for cell_lines, width in zip(cells, widths, strict=True)))
        if number == 0:
            lines.append("─" * (sum(widths) + 3 * (len(widths) - 1)))
    return "\n".join(lines) + "\n"


def plain_fields(pairs: Sequence[tuple[str, str]], width: int,
                 ruler: Ruler) -> list[str] | None:
    """The lines of ``Output.fields`` as rich writes them to a pipe or a file: names, two
    spaces, values, every column padded to its widest. None when a value would have to
    fold (rich's folding is left to rich)."""
    if not pairs:
        return []
    names = max(ruler.cells(name) for name, _ in pairs)
    values = max(ruler.cells(value) for _, value in pairs)
    if names + 2 + values > width:
        return None
    return [ruler.sized(name, names) + "  " + ruler.sized(value, values)
            for name, value in pairs]


def write(stream: TextIO, text: str, *, flush: bool = True) -> None:
    """Write ``text`` to ``stream``; flush it unless the caller flushes later."""
    stream.write(text)
    if flush:
        stream.flush()


def widest_line(text: str, ruler: Ruler) -> int:
    """The width of the widest line of ``text`` in terminal cells."""
    return max(ruler.cells(line) for line in text.split("\n")) if text else 0
