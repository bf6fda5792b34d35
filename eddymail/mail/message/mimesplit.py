"""A fast MIME splitter that builds exactly the tree ``email.feedparser`` builds, or declines.

The standard library's feed parser reads a message line by line in Python: each of the
2,700 lines of a 200 KB base64 attachment goes through a deque, a stack of end-of-part
matchers and a regular expression, and every boundary compiles a new regular expression.
That was the largest single cost of taking mail in. For mail whose structure is regular,
which is nearly all of it, the same tree can be built by looking for delimiter lines with
``str.find`` and slicing.

``split_message`` does that and returns ``None`` at the first thing it is not sure to treat
exactly as the feed parser would: a bare CR line end, a header line the feed parser would
flag (a defect), a multipart without a usable boundary or close delimiter, repeated
delimiter lines, message/delivery-status, nesting deeper than any real mail. The caller then
runs the feed parser, so broken and hostile mail still gets its proven handling and its
defects. ``tests/test_mimesplit.py`` holds the two to the same result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy as email_policy
from email.message import Message

_POLICY = email_policy.compat32
# A header line the feed parser accepts without a defect: a name of printable characters
# other than ":" (no space, so never a "From " envelope line), then ":".
_HEADER_LINE = re.compile(r"[\041-\071\073-\176]+:")
_PLAIN_TRANSFER = ("7bit", "8bit", "binary")
# Beyond what real mail has, the feed parser takes over: it checks the parse deadline
# between chunks, where this splitter's loops over lines and delimiters would not.
_MAX_DEPTH = 40  # precheck() refuses more than 30 levels anyway
_MAX_HEADER_CHARS = 1024 * 1024  # the header block of one part
_MAX_SEPARATORS = 4096  # "--boundary" strings in one multipart (precheck allows 1000 parts)


class _Decline(Exception):
    """The input has something the feed parser handles in its own way: let it."""


@dataclass(frozen=True)
class _Delimiter:
    start: int  # where the delimiter line starts
    end: int  # where the next line starts
    close: bool  # "--boundary--"


def split_message(raw: bytes) -> Message | None:
    """The compat32 ``Message`` tree ``BytesFeedParser`` would build from ``raw``, or ``None``.

    ``None`` means "use the feed parser": the input is not one this splitter is sure about.
    """
    text = raw.decode("ascii", "surrogateescape")
    if "\r" in text and text.count("\r") != text.count("\r\n"):
        return None  # the feed parser also ends lines at a bare CR
    try:
        message, _last = _parse(text, 0, len(text), None, 0)
    except _Decline:
        return None
    return message


def _parse(text: str, start: int, end: int, parent: Message | None,
           depth: int) -> tuple[Message, Message]:
    """Parse ``text[start:end]`` as one message; return it and the feed parser's "last" part.

    The feed parser strips the line break in front of a delimiter from the payload (or
    epilogue) of the part it created last, which may sit deep inside the part just ended;
    returning that part lets the caller do the same.
    """
    if depth > _MAX_DEPTH:
        raise _Decline
    message = Message(policy=_POLICY)
    if parent is not None and parent.get_content_type() == "multipart/digest":
        message.set_default_type("message/rfc822")
    body = _read_headers(text, start, end, message)
    if message.get_content_type() == "message/delivery-status":
        raise _Decline
    maintype = message.get_content_maintype()
    if maintype == "message":
        inner, last = _parse(text, body, end, message, depth + 1)
        message.attach(inner)
        return message, last
    if maintype == "multipart":
        _split_multipart(text, body, end, message, depth)
        return message, message
    message.set_payload(text[body:end])
    return message, message


def _read_headers(text: str, start: int, end: int, message: Message) -> int:
    """Set the header fields found at ``start``; return where the body starts."""
    field: list[str] = []
    position = start
    while position < end:
        newline = text.find("\n", position, end)
        if newline < 0:
            raise _Decline  # the headers run to the end of the input
        line = text[position:newline + 1]
        position = newline + 1
        if position - start > _MAX_HEADER_CHARS:
            raise _Decline
        if line == "\n" or line == "\r\n":
            break
        if line[0] in " \t":
            if not field:
                raise _Decline  # a continuation line with no field to continue
            field.append(line)
        elif _HEADER_LINE.match(line):
            if field:
                message.set_raw(*_POLICY.header_source_parse(field))
            field = [line]
        else:
            raise _Decline  # the feed parser would end the headers here, with a defect
    else:
        raise _Decline  # no blank line before the end of the part
    if field:
        message.set_raw(*_POLICY.header_source_parse(field))
    return position


def _split_multipart(text: str, start: int, end: int, message: Message, depth: int) -> None:
    """Cut ``text[start:end]`` at the delimiter lines and parse each part."""
    boundary = message.get_boundary()
    if not boundary or "\n" in boundary or "\r" in boundary:
        raise _Decline  # a delimiter would have to span lines
    encoding = str(message.get("content-transfer-encoding", "8bit")).lower()
    if encoding not in _PLAIN_TRANSFER:
        raise _Decline
    separator = "--" + boundary
    if text.count(separator, start, end) > _MAX_SEPARATORS:
        raise _Decline
    delimiters = _delimiters(text, start, end, separator)
    first = next(delimiters, None)
    if first is None or first.close:
        raise _Decline
    if first.start > start:
        message.preamble = _without_line_end(text[start:first.start])
    part_start = first.end
    for delimiter in delimiters:
        if delimiter.start == part_start:
            raise _Decline  # repeated delimiter lines; the parser skips them its own way
        part, last = _parse(text, part_start, delimiter.start, message, depth + 1)
        message.attach(part)
        _give_line_end_to_delimiter(last)
        if delimiter.close:
            message.epilogue = text[delimiter.end:end]
            return
        part_start = delimiter.end
    raise _Decline  # no close delimiter


def _delimiters(text: str, start: int, end: int, separator: str):
    """Delimiter lines of ``separator`` in ``text[start:end]``, as the feed parser matches
    them: at the start of a line, optionally "--", then only blanks up to the line end."""
    position = start
    while True:
        found = text.find(separator, position, end)
        if found < 0:
            return
        position = found + 1
        if found != start and text[found - 1] != "\n":
            continue
        newline = text.find("\n", found, end)
        line_end = end if newline < 0 else newline + 1
        rest = text[found + len(separator):line_end]
        close = rest.startswith("--")
        if close:
            rest = rest[2:]
        if rest.lstrip(" \t") not in ("", "\n", "\r\n"):
            continue
        yield _Delimiter(found, line_end, close)
        position = line_end


def _give_line_end_to_delimiter(last: Message) -> None:
    """RFC 2046: the line break before a delimiter belongs to the delimiter."""
    if last.get_content_maintype() == "multipart":
        if last.epilogue == "":
            last.epilogue = None
        elif last.epilogue is not None:
            last.epilogue = _without_line_end(last.epilogue)
    elif isinstance(last._payload, str):
        last._payload = _without_line_end(last._payload)


def _without_line_end(value: str) -> str:
    if value.endswith("\r\n"):
        return value[:-2]
    return value[:-1] if value.endswith("\n") else value
