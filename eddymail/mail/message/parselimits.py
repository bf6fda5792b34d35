"""Limits on what a message may cost to parse, and the cheap checks that enforce them.

The ``email`` parser recurses per nesting level and does work per part and per header
parameter, so a 20,000-part message, a multipart nested 1000 levels deep or a Content-Type
header made of 100,000 semicolons costs seconds to minutes. ``precheck`` looks at the raw
bytes with a few C-speed regular expression scans first and refuses such a message before
the parser ever sees it; ``Deadline`` bounds the rest cooperatively.
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

from eddymail.errors import MessageParseError
from eddymail.patterns import LazyPattern


# eq/repr off: never compared or printed, and each generated method is compiled at import
# (every start-up of ``ingest``).
@dataclass(frozen=True, eq=False, repr=False)
class ParseLimits:
    """What one message may cost. The defaults fit any mail a person would send.

    ``max_header_field_bytes`` bounds one field of the top-level header with its continuation
    lines: RFC 5322 lines stop at 998 characters, and a From or To field of 200,000 commas
    or nested comments exists only to make an address parser work; the largest real fields
    (References of a long thread, a To list of a thousand people) stay far below.
    ``max_header_params`` bounds the parameters of one Content-Type header (the parser's
    parameter splitting is quadratic in their number); ``max_html_chars`` bounds how much
    HTML of one message, all its parts together, is converted to text (the rest is cut, with
    a note in ``defects``).
    """

    max_message_bytes: int = 50 * 1024 * 1024
    max_header_bytes: int = 1024 * 1024
    max_header_field_bytes: int = 128 * 1024
    max_parts: int = 1000
    max_depth: int = 30
    max_seconds: float = 10.0
    max_header_params: int = 100
    max_html_chars: int = 1_000_000


class Deadline:
    """A parse-time budget, checked at the points where work is split into steps."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def check(self, doing: str) -> None:
        """Raise ``MessageParseError`` once the budget is spent."""
        if time.monotonic() > self._end:
            raise MessageParseError(
                f"parsing the message took longer than {self.seconds:g} seconds "
                f"(while {doing}), the limit is {self.seconds:g} seconds"
            )


_TREE_DEPTH = 70
_HEADER_END = LazyPattern(rb"\r?\n\r?\n")
# Where a header field starts (the lines were turned into LF-only ones before the scan).
_FIELD_START = LazyPattern(rb"\n(?![ \t])")
_FIELD_NAME = LazyPattern(rb"([A-Za-z0-9-]{1,40}):")
# A Content-Type header (with its continuation lines) that makes the parser descend a level,
# tried only where a line starts with "content-type:" in any case (``_field_starts``): a
# search with "^" and IGNORECASE over the whole message crawls.
_NESTING_TYPE = LazyPattern(
    rb"content-type:[ \t]*(?:\r?\n[ \t]+)?(multipart|message)/([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)",
    re.IGNORECASE,
)
# Bytes lower-cased at a time to find those lines: never a lower-cased copy of the message.
_WINDOW = 1 << 20
_BOUNDARY = LazyPattern(rb'boundary\s*=\s*(?:"([^"\r\n]*)"|([^\s;"]+))', re.IGNORECASE)
_BARE_CR = LazyPattern(rb"\r(?!\n)")


def has_bare_cr(raw: bytes) -> bool:
    """True when a CR is not followed by LF: the parser ends a line there too.

    (One scan; counting CRs and CRLFs to compare takes two, and counting a two-byte string
    is slow.)
    """
    return _BARE_CR.search(raw) is not None


def precheck(raw: bytes, limits: ParseLimits) -> None:
    """Refuse, cheaply, a message over a limit, with a sentence saying which and by how much."""
    if len(raw) > limits.max_message_bytes:
        raise MessageParseError(
            f"message is {len(raw)} bytes, the limit is {limits.max_message_bytes} bytes"
        )
    if has_bare_cr(raw):
        # The parser also ends lines at a bare CR; the scans below only know LF.
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if raw.startswith((b"\n", b"\r\n")):
        header_end = 0
    else:
        match = _HEADER_END.search(raw, 0, limits.max_header_bytes + 4)
        header_end = match.start() if match else len(raw)
    if header_end > limits.max_header_bytes:
        raise MessageParseError(
            f"message header block is larger than {limits.max_header_bytes} bytes, "
            f"the limit is {limits.max_header_bytes} bytes"
        )
    _check_structure(raw, limits)
    if header_end > limits.max_header_field_bytes:
        _check_fields(raw[:header_end], limits)


def _check_fields(block: bytes, limits: ParseLimits) -> None:
    """Refuse a header block with one field (and its continuation lines) over the limit."""
    start = 0
    for end in [match.start() for match in _FIELD_START.finditer(block)] + [len(block)]:
        if end - start > limits.max_header_field_bytes:
            name = _FIELD_NAME.match(block, start)
            label = f"the {name.group(1).decode('ascii')} header" if name else "a header field"
            raise MessageParseError(
                f"{label} is {end - start} bytes long, "
                f"the limit is {limits.max_header_field_bytes} bytes"
            )
        start = end + 1


def _check_structure(raw: bytes, limits: ParseLimits) -> None:
    """Count parts and nesting from boundary declarations and delimiter lines.

    Every multipart/* or message/* Content-Type opens a level; a delimiter line of an
    enclosing multipart closes the levels opened inside it, as it does for the parser.
    Declarations are collected first (at most ``max_parts``), then only lines that start
    with one of the declared boundaries are visited, so the Python work is bounded by the
    limits, not by the size of the message. Only multipart headers are checked for their
    parameter count: the parser splits parameters (quadratically) only to find a boundary.
    """
    declarations: list[tuple[int, bytes | None]] = []
    for start in _field_starts(raw, b"content-type:"):
        match = _NESTING_TYPE.match(raw, start)
        if match is None:
            continue
        if len(declarations) >= limits.max_parts:
            raise MessageParseError(
                f"message has more than {limits.max_parts} nested MIME containers, "
                f"the limit is {limits.max_parts} MIME parts"
            )
        boundary: bytes | None = None
        if match.group(1).lower() == b"multipart":
            value = match.group(2)
            count = value.count(b";")
            if count > limits.max_header_params:
                raise MessageParseError(
                    f"a Content-Type header has {count} parameters, "
                    f"the limit is {limits.max_header_params}"
                )
            found = _BOUNDARY.search(value)
            if found is None:
                continue  # the parser reads a multipart without boundary as one text part
            boundary = (found.group(1) if found.group(1) is not None else found.group(2)).rstrip()
            if not boundary:
                continue
        declarations.append((start - 1, boundary))  # where its line's "\n" is
    boundaries = {boundary for _, boundary in declarations if boundary}
    if not boundaries:
        _check_depth(declarations, [], limits)
        return
    # The rest of the line is matched loosely and checked against the set below, so lines
    # that only start like a boundary cost one set lookup.
    delimiter = re.compile(
        rb"\n--(" + _prefix_tree_pattern(boundaries) + rb"[^\r\n]*?)(--)?[ \t]*\r?(?=\n|\Z)"
    )
    delimiters: list[tuple[int, bytes, bool]] = []
    parts = 1
    for match in delimiter.finditer(raw):
        if match.group(1) not in boundaries:
            continue
        delimiters.append((match.start(), match.group(1), match.group(2) is not None))
        if match.group(2) is None:
            parts += 1
        if parts > limits.max_parts:
            _check_depth(declarations, delimiters, limits)
            total = parts + _remaining_delimiters(raw, match.end(), match.group(1))
            raise MessageParseError(
                f"message has {total} MIME parts, the limit is {limits.max_parts}"
            )
    _check_depth(declarations, delimiters, limits)


def _field_starts(raw: bytes, name: bytes) -> Iterator[int]:
    """Where a line of ``raw`` starts with ``name`` (lower case) in any case, in order.

    The message is lower-cased a window at a time (windows overlap by the length of the
    searched line start), so ``bytes.find`` skips ahead at memchr speed.
    """
    if raw[:len(name)].lower() == name:
        yield 0
    needle = b"\n" + name
    for window_start in range(0, len(raw), _WINDOW):
        window = raw[window_start:window_start + _WINDOW + len(needle) - 1].lower()
        found = window.find(needle)
        while 0 <= found < _WINDOW:  # a find past the window is the next window's
            yield window_start + found + 1
            found = window.find(needle, found + 1)


def _check_depth(
    declarations: list[tuple[int, bytes | None]],
    delimiters: list[tuple[int, bytes, bool]],
    limits: ParseLimits,
) -> None:
    opened: list[bytes | None] = []  # boundaries, None for a message/* level
    events = heapq.merge(
        ((position, 0, boundary, False) for position, boundary in declarations),
        ((position, 1, boundary, closing) for position, boundary, closing in delimiters),
    )
    for _, kind, boundary, closing in events:
        if kind == 0:
            opened.append(boundary)
            if len(opened) > limits.max_depth:
                raise MessageParseError(
                    f"message nests MIME parts more than {limits.max_depth} levels deep, "
                    f"the limit is {limits.max_depth}"
                )
        elif boundary in opened:
            while opened[-1] != boundary:
                opened.pop()
            if closing:
                opened.pop()


# Byte -> the rest of the words; the key None marks the end of a word.
_PrefixTree = dict[int | None, "_PrefixTree"]


def _prefix_tree_pattern(words: set[bytes]) -> bytes:
    """A pattern for "any of ``words``" shaped as a prefix tree (``ab(?:c|d)``).

    A flat ``a|b|c`` alternation compares a line against every word in turn; 1000 declared
    boundaries sharing long prefixes made that minutes of work on a crafted message. The
    tree costs the length of one word. Words are cut at ``_TREE_DEPTH`` bytes (RFC 2046
    boundaries have at most 70); the caller checks the whole line.
    """
    tree: _PrefixTree = {}
    for word in words:
        node = tree
        for byte in word[:_TREE_DEPTH]:
            node = node.setdefault(byte, {})
        node[None] = {}
    return _emit_tree(tree)


def _emit_tree(node: _PrefixTree) -> bytes:
    branches = [
        re.escape(bytes([key])) + _emit_tree(child)
        for key, child in node.items()
        if key is not None
    ]
    if not branches:
        return b""
    pattern = branches[0] if len(branches) == 1 else b"(?:" + b"|".join(branches) + b")"
    return b"(?:" + pattern + b")?" if None in node else pattern


def _remaining_delimiters(raw: bytes, start: int, boundary: bytes) -> int:
    line = b"\n--" + boundary
    return raw.count(line, start) - raw.count(line + b"--", start)
