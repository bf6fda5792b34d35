"""Cutting a message into ``RawPart``s: a fast splitter, and the feed parser for odd mail.

The standard library's feed parser reads a message line by line in Python: each of the
2,700 lines of a 200 KB base64 attachment goes through a deque, a stack of end-of-part
matchers and a regular expression, and every boundary compiles a new regular expression.
That was the largest single cost of taking mail in. For mail whose structure is regular,
which is nearly all of it, the same tree can be built by looking for delimiter lines with
``bytes.find`` and slicing.

``split_message`` does that and returns ``None`` at the first thing it is not sure to treat
exactly as the feed parser would: a bare CR line end, a header line the feed parser would
flag (a defect), a multipart without a usable boundary or close delimiter, repeated
delimiter lines, message/delivery-status, nesting deeper than any real mail. ``split`` then
runs the feed parser (``stdlib_email``), so broken and hostile mail still gets its proven
handling and its defects. What a Content-Type means (the type, the boundary) is asked of the
standard library in both cases. ``tests/test_mimesplit.py`` holds the two to the same result.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from eddymail.mail.message import stdlib_email
from eddymail.mail.message.parselimits import Deadline, has_bare_cr
from eddymail.mail.message.rawparts import RawPart, first_field
from eddymail.patterns import LazyPattern

# A header line the feed parser accepts without a defect: a name of printable characters
# other than ":" (no space, so never a "From " envelope line), then ":".
_HEADER_LINE = LazyPattern(rb"[\041-\071\073-\176]+:")
_PLAIN_TRANSFER = (b"7bit", b"8bit", b"binary")
# Beyond what real mail has, the feed parser takes over: it checks the parse deadline
# between chunks, where this splitter's loops over lines and delimiters would not.
_MAX_DEPTH = 40  # precheck() refuses more than 30 levels anyway
_MAX_HEADER_BYTES = 1024 * 1024  # the header block of one part
_MAX_SEPARATORS = 4096  # "--boundary" strings in one multipart (precheck allows 1000 parts)


class _Decline(Exception):
    """The input has something the feed parser handles in its own way: let it."""


class _Delimiter(NamedTuple):
    start: int  # where the delimiter line starts
    end: int  # where the next line starts
    close: bool  # "--boundary--"


def split(raw: bytes, deadline: Deadline) -> RawPart:
    """The ``RawPart`` tree of ``raw``: this splitter's when it is sure, else the feed parser's."""
    part = split_message(raw)
    if part is not None:
        return part
    return stdlib_email.feed_parse(raw, deadline)


def split_message(raw: bytes) -> RawPart | None:
    """The tree ``BytesFeedParser`` would build from ``raw``, or ``None`` to use it instead."""
    if has_bare_cr(raw):
        return None  # the feed parser also ends lines at a bare CR
    try:
        return _parse(raw, 0, len(raw), "text/plain", 0, before_delimiter=False)
    except _Decline:
        return None


def _parse(data: bytes, start: int, end: int, default_type: str, depth: int, *,
           before_delimiter: bool) -> RawPart:
    """Parse ``data[start:end]`` as one entity.

    ``before_delimiter``: a delimiter line follows, and the line break in front of it belongs
    to the delimiter (RFC 2046). The feed parser takes it from whatever it created last: the
    payload of the last leaf or the epilogue of the last multipart, however deep.
    """
    if depth > _MAX_DEPTH:
        raise _Decline
    fields, body = _read_headers(data, start, end)
    content_type, boundary = stdlib_email.content_type_and_boundary(
        first_field(fields, "content-type"), default_type)
    if content_type == "message/delivery-status":
        raise _Decline
    maintype = content_type.partition("/")[0]
    if maintype == "message":
        inner = _parse(data, body, end, "text/plain", depth + 1,
                       before_delimiter=before_delimiter)
        return RawPart(fields, (inner,), default_type=default_type)
    if maintype == "multipart":
        return _split_multipart(data, body, end, fields, content_type, boundary, default_type,
                                depth, before_delimiter=before_delimiter)
    if before_delimiter:
        end -= _line_end_length(data, body, end)
    # A view, not a copy: the payload of a big attachment is most of the message, and the
    # raw bytes are kept anyway (decoding reads the view; nothing else needs a copy).
    return RawPart(fields, memoryview(data)[body:end], default_type=default_type)


def _read_headers(data: bytes, start: int, end: int) -> tuple[tuple[tuple[str, bytes], ...], int]:
    """The header fields found at ``start`` and where the body starts."""
    fields: list[tuple[str, bytes]] = []
    lines: list[bytes] = []
    position = start
    while position < end:
        newline = data.find(b"\n", position, end)
        if newline < 0:
            raise _Decline  # the headers run to the end of the input
        line = data[position:newline + 1]
        position = newline + 1
        if position - start > _MAX_HEADER_BYTES:
            raise _Decline
        if line == b"\n" or line == b"\r\n":
            break
        if line.startswith((b" ", b"\t")):
            if not lines:
                raise _Decline  # a continuation line with no field to continue
            lines.append(line)
        elif _HEADER_LINE.match(line):
            if lines:
                fields.append(_field(lines))
            lines = [line]
        else:
            raise _Decline  # the feed parser would end the headers here, with a defect
    else:
        raise _Decline  # no blank line before the end of the part
    if lines:
        fields.append(_field(lines))
    return tuple(fields), position


def _field(lines: list[bytes]) -> tuple[str, bytes]:
    """One field as compat32's documented ``header_source_parse`` makes it: the name up to
    ":", the value without leading blanks, its lines joined, without the final line end."""
    name, _, value = lines[0].partition(b":")
    value = value.lstrip(b" \t") + b"".join(lines[1:])
    return name.decode("ascii"), value.rstrip(b"\r\n")


def _split_multipart(data: bytes, start: int, end: int, fields: tuple[tuple[str, bytes], ...],
                     content_type: str, boundary: str | None, default_type: str, depth: int, *,
                     before_delimiter: bool) -> RawPart:
    """Cut ``data[start:end]`` at the delimiter lines and parse each part."""
    if not boundary or not boundary.isascii() or "\n" in boundary or "\r" in boundary:
        # (A boundary with other characters never matches: the feed parser reads the bytes
        # as ASCII with surrogate escapes, and get_boundary() has none.)
        raise _Decline
    encoding = first_field(fields, "content-transfer-encoding")
    if encoding is not None and encoding.lower() not in _PLAIN_TRANSFER:
        raise _Decline
    separator = b"--" + boundary.encode("ascii")
    if data.count(separator, start, end) > _MAX_SEPARATORS:
        raise _Decline
    delimiters = _delimiters(data, start, end, separator)
    first = next(delimiters, None)
    if first is None or first.close:
        raise _Decline
    preamble = _without_line_end(data[start:first.start]) if first.start > start else None
    child_type = "message/rfc822" if content_type == "multipart/digest" else "text/plain"
    children: list[RawPart] = []
    part_start = first.end
    for delimiter in delimiters:
        if delimiter.start == part_start:
            raise _Decline  # repeated delimiter lines; the parser skips them its own way
        children.append(_parse(data, part_start, delimiter.start, child_type, depth + 1,
                               before_delimiter=True))
        if delimiter.close:
            epilogue: bytes | None = data[delimiter.end:end]
            if before_delimiter:
                epilogue = _without_line_end(epilogue) if epilogue else None
            return RawPart(fields, tuple(children), boundary=separator[2:], preamble=preamble,
                           epilogue=epilogue, default_type=default_type)
        part_start = delimiter.end
    raise _Decline  # no close delimiter


def _delimiters(data: bytes, start: int, end: int, separator: bytes) -> Iterator[_Delimiter]:
    """Delimiter lines of ``separator`` in ``data[start:end]``, as the feed parser matches
    them: at the start of a line, optionally "--", then only blanks up to the line end."""
    position = start
    while True:
        found = data.find(separator, position, end)
        if found < 0:
            return
        position = found + 1
        if found != start and data[found - 1] != 0x0A:
            continue
        newline = data.find(b"\n", found, end)
        line_end = end if newline < 0 else newline + 1
        rest = data[found + len(separator):line_end]
        close = rest.startswith(b"--")
        if close:
            rest = rest[2:]
        if rest.lstrip(b" \t") not in (b"", b"\n", b"\r\n"):
            continue
        yield _Delimiter(found, line_end, close)
        position = line_end


def _without_line_end(value: bytes) -> bytes:
    return value[:len(value) - _line_end_length(value, 0, len(value))]


def _line_end_length(data: bytes, start: int, end: int) -> int:
    """The length of the line end that closes ``data[start:end]`` (2, 1 or 0)."""
    if end - start >= 2 and data[end - 2:end] == b"\r\n":
        return 2
    return 1 if end > start and data[end - 1] == 0x0A else 0
