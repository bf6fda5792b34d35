"""Header blocks broken the way some mailers break them, repaired before parsing.

Two forms make a strict parser (the standard library's among them) take every header from
the broken line on for the body: the obsolete ``Name :`` form (RFC 5322 section 4.5.3
allows white space before the colon) and one garbage line (no colon, no indentation) among
the headers. A careful reader takes ``Subject : Hello`` as the Subject, and skips a line
that is no header when a well-known header (``Date``, ``X-...``, ``Content-...``) follows
it before the blank line. A non-header line that no well-known header follows is where the
body starts (a mailer that left out the blank line, a body line such as "Note: ..."): it
stays, and the parser treats it so.

A third: a multipart boundary folded *inside* its quotes (``boundary="abc`` CRLF
`` 123"``). Unfolding leaves "abc 123", which no delimiter line uses; when the body's
delimiters use the value without the fold, that is the boundary.
"""

from __future__ import annotations

import re

from eddymail.patterns import LazyPattern

#: The most header bytes looked at; a header block beyond it is left as it is.
MAX_HEADER_BLOCK = 256 * 1024
_FIELD = LazyPattern(rb"^[!-9;-~]+:")
_OBSOLETE_FIELD = LazyPattern(rb"^([!-9;-~]+)[ \t]+:")
_CONTINUATION = LazyPattern(rb"^[ \t]")
_MBOX_FROM = LazyPattern(rb"^From ")
_WELL_KNOWN = LazyPattern(
    rb"^(?:from|to|cc|bcc|subject|date|message-id|in-reply-to|references|reply-to|sender|"
    rb"return-path|received|mime-version|user-agent|precedence|importance|priority|"
    rb"organization|thread-topic|thread-index|delivered-to|envelope-to|auto-submitted|"
    rb"authentication-results|keywords|comments|"
    rb"(?:x|content|list|resent|arc|dkim|received-spf|disposition)-[!-9;-~]*)[ \t]*:",
    re.IGNORECASE)


def repair_header_block(raw: bytes) -> tuple[bytes, list[str]]:
    """``raw`` with ``Name :`` fields joined up and garbage lines among headers dropped;
    and the repairs, for the message's defects (the bytes are unchanged when none)."""
    lines = raw[:MAX_HEADER_BLOCK].splitlines(keepends=True)
    kinds: list[str] = []
    for line in lines:
        content = line.rstrip(b"\r\n")
        if not content:
            break
        if _OBSOLETE_FIELD.match(content):
            kinds.append("obsolete")
        elif _WELL_KNOWN.match(content) or _CONTINUATION.match(content) or (
                not kinds and _MBOX_FROM.match(content)):
            kinds.append("field")
        elif _FIELD.match(content):
            kinds.append("unknown field")
        else:
            kinds.append("garbage")
    else:
        if len(raw) > MAX_HEADER_BLOCK:
            return raw, []  # no end of the header block in sight: leave it alone
    # Garbage is skipped only when a well-known header comes after it.
    last_field = max((i for i, kind in enumerate(kinds) if kind in ("field", "obsolete")),
                     default=-1)
    repaired: list[bytes] = []
    notes: list[str] = []
    for index, line in enumerate(lines[: len(kinds)]):
        kind = kinds[index]
        if kind == "obsolete":
            line = _OBSOLETE_FIELD.sub(rb"\1:", line, count=1)
            notes.append("a header written as 'Name :' read as 'Name:'")
        elif kind == "garbage" and index < last_field:
            notes.append("a line among the headers that is no header was skipped")
            continue
        repaired.append(line)
    consumed = sum(len(line) for line in lines[: len(kinds)])
    header, folded = _join_folded_boundary(b"".join(repaired), raw, consumed)
    if folded:
        notes.append("a multipart boundary folded inside its quotes was joined up")
    if not notes:
        return raw, []
    # The body is not sliced out first: for a message of tens of megabytes that would be a
    # second copy of it on top of the repaired one.
    return header + memoryview(raw)[consumed:], list(dict.fromkeys(notes))


_FOLDED_BOUNDARY = LazyPattern(
    rb'^(content-type[ \t]*:(?:[^\r\n]|\r?\n[ \t])*?boundary[ \t]*=[ \t]*")'
    rb'((?:[^"\r\n]|\r?\n[ \t])*)"', re.IGNORECASE | re.MULTILINE)
_FOLD = LazyPattern(rb"\r?\n[ \t]+")


def _join_folded_boundary(header: bytes, raw: bytes, body: int) -> tuple[bytes, bool]:
    """The top-level Content-Type with a boundary folded inside its quotes joined up (when
    the body, ``raw`` from offset ``body``, uses the joined boundary and not the other)."""
    match = _FOLDED_BOUNDARY.search(header)
    if match is None or not _FOLD.search(match.group(2)):
        return header, False
    joined = _FOLD.sub(b"", match.group(2))
    unfolded = _FOLD.sub(b" ", match.group(2))
    if raw.find(b"--" + joined, body) < 0 or raw.find(b"--" + unfolded, body) >= 0:
        return header, False
    return header[: match.start(2)] + joined + header[match.end(2):], True
