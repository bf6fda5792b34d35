"""Header values from raw bytes: RFC 2047 words, RFC 2231 parameters, message ids, dates.

The ``email`` package is asked only to split a message into header lines; the values are
decoded here because ``policy.default`` raises on some garbage and its decoder handles
encoded words split in the middle of a character or lying charsets less gracefully. Every
function takes bytes (the header exactly as received) and never raises on bad input.
"""

from __future__ import annotations

import binascii
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_to_bytes

from eddymail.mail.message.charsets import Hint, decode_declared, decode_header_bytes
from eddymail.patterns import LazyPattern

MAX_ID_LENGTH = 250
_ENCODED_WORD = LazyPattern(rb"=\?([^?\s]{1,75})\?([bBqQ])\?([^?\s]*)\?=")
_QUOTED_HEX = LazyPattern(rb"=([0-9A-Fa-f]{2})")
_NOT_BASE64 = LazyPattern(rb"[^A-Za-z0-9+/]")
# Every kind of line break and blank (str's \s: also VT, FF, the C0 separators, NEL, U+2028
# and U+2029) becomes one space: a header value is one line.
_WHITESPACE = LazyPattern(r"\s+")
# NUL (which PostgreSQL refuses in text) and lone surrogates (which no database or terminal
# can encode) are the only characters that cannot be kept; they show as U+FFFD.
_UNSTORABLE = LazyPattern("[\x00\ud800-\udfff]")
_PARAMETER = LazyPattern(rb'([^=;\s"]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)', re.DOTALL)
# Only \\ and \" are unescaped, as the email package does: Windows mailers put raw paths
# (C:\Users\x.doc) in quoted filenames, and the backslashes are what marks the path to cut.
_QUOTED_PAIR = LazyPattern(rb'\\([\\"])')
_CONTINUATION = LazyPattern(r"^(.+?)\*(\d{1,4})?(\*)?$")
_ANGLE_ID = LazyPattern(r"<([^<>]{0,2000})>")
_ID_WHITESPACE = LazyPattern(r"[\s\x00-\x1f\x7f-\x9f]+")


def unfold(raw: bytes) -> bytes:
    """Undo header folding (RFC 5322 2.2.3): drop the line breaks, keep the whitespace."""
    return raw.replace(b"\r", b"").replace(b"\n", b"")


def clean_text(text: str) -> str:
    """One line of text: whitespace and line breaks collapsed to single spaces, NUL and lone
    surrogates replaced by U+FFFD.

    Other control, bidi and zero-width characters are kept: they are what the sender wrote,
    and removing them would turn ``ESC]0;title BEL`` into a harmless-looking ``]0;title``.
    Everything that displays a value escapes them visibly (``safetext.for_terminal`` and
    ``for_json``); everything that writes one into an outgoing header removes them
    (``compose.sanitize_header_value``).
    """
    return _WHITESPACE.sub(" ", replace_unstorable(text)).strip()


def replace_unstorable(text: str) -> str:
    """``text`` with NUL and lone surrogates replaced by U+FFFD, so any database takes it."""
    return _UNSTORABLE.sub("\ufffd", text)


def decode_words(raw: bytes, hint: Hint = None) -> str:
    """Decode RFC 2047 encoded words and raw 8-bit text in a header value.

    Adjacent encoded words in the same charset are joined as bytes before decoding, because
    mailers split long subjects between the bytes of one multibyte character. Whitespace
    between encoded words is dropped (RFC 2047 6.2). Unknown charsets give U+FFFD.
    """
    # (charset label, or None for text outside encoded words; its bytes)
    pieces: list[tuple[str | None, bytearray]] = []
    position = 0
    previous_was_word = False
    for match in _ENCODED_WORD.finditer(raw):
        between = raw[position : match.start()]
        position = match.end()
        if between and not (previous_was_word and not between.strip(b" \t\r\n")):
            pieces.append((None, bytearray(between)))
        decoded = _decode_word(match.group(2), match.group(3))
        if decoded is None:
            pieces.append((None, bytearray(match.group(0))))
            previous_was_word = False
            continue
        label = match.group(1).split(b"*", 1)[0].decode("ascii", "replace").lower()
        if previous_was_word and pieces[-1][0] == label:
            pieces[-1][1].extend(decoded)
        else:
            pieces.append((label, bytearray(decoded)))
        previous_was_word = True
    if position < len(raw):
        pieces.append((None, bytearray(raw[position:])))
    return "".join(_decode_piece(label, bytes(data), hint) for label, data in pieces)


def decode_header(raw: bytes, hint: Hint = None) -> str:
    """A display value (subject, name): unfolded, decoded, one line (see ``clean_text``)."""
    return clean_text(decode_words(unfold(raw), hint))


def parse_parameters(raw: bytes, hint: Hint = None) -> tuple[str, dict[str, str]]:
    """Split ``type/subtype; name=value; ...`` into the lower-cased value and its parameters.

    Parameter names are lower-cased; values are unquoted and decoded (RFC 2231 charset and
    continuations, RFC 2047 words that some mailers put in filenames, raw 8-bit text).
    Scans the header once, so a hostile header costs linear time.
    """
    raw = unfold(raw)
    head, _, rest = raw.partition(b";")
    value = decode_header_bytes(head.strip(b' \t"')).lower()
    simple: dict[str, bytes] = {}
    segments: dict[str, list[tuple[int, bool, bytes]]] = {}
    position = 0
    while position < len(rest):
        while position < len(rest) and rest[position : position + 1] in b" \t;":
            position += 1
        match = _PARAMETER.match(rest, position)
        if match is None:
            following = rest.find(b";", position)
            position = len(rest) if following < 0 else following + 1
            continue
        position = match.end()
        name = match.group(1).decode("ascii", "replace").lower()
        text = match.group(2).strip()
        if text.startswith(b'"'):
            text = _QUOTED_PAIR.sub(
                rb"\1", text[1:-1] if text.endswith(b'"') and len(text) > 1 else text[1:]
            )
        continued = _CONTINUATION.match(name)
        if continued is None:
            simple.setdefault(name, text)
        else:
            index = int(continued.group(2)) if continued.group(2) else 0
            extended = continued.group(3) is not None or continued.group(2) is None
            segments.setdefault(continued.group(1), []).append((index, extended, text))
    parameters = {name: decode_words(text, hint) for name, text in simple.items()}
    for name, parts in segments.items():
        parameters[name] = _join_rfc2231(parts, hint)
    return value, parameters


def extract_ids(raw: bytes, limit: int, *, keep_last: bool = False) -> list[str]:
    """Every ``<id>`` in a Message-ID/In-Reply-To/References value, brackets stripped.

    Whitespace inside an id (from folding) is removed, over-long ids are dropped, duplicates
    kept once; ``limit`` keeps the first (or, with ``keep_last``, the last) ids. A lone bare
    token with an ``@`` counts as an id, since some mailers forget the brackets.
    """
    text = decode_words(unfold(raw))
    found: list[str] = []
    seen: set[str] = set()
    for match in _ANGLE_ID.finditer(text):
        ident = _ID_WHITESPACE.sub("", match.group(1))
        if ident and len(ident) <= MAX_ID_LENGTH and ident not in seen:
            seen.add(ident)
            found.append(ident)
    if not found:
        bare = _ID_WHITESPACE.sub(" ", text).strip()
        if "@" in bare and " " not in bare and "<" not in bare and len(bare) <= MAX_ID_LENGTH:
            found.append(bare.rstrip(">").lstrip("<"))
    return found[-limit:] if keep_last else found[:limit]


def parse_date(raw: bytes) -> datetime | None:
    """An RFC 5322 date as an aware UTC datetime; None when it cannot be understood."""
    text = clean_text(unfold(raw).decode("ascii", "replace"))
    if not text or len(text) > 200:
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        # "-0000" means "UTC, local zone unknown" (RFC 5322 3.3).
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _decode_word(encoding: bytes, text: bytes) -> bytes | None:
    if encoding in b"Qq":
        return _QUOTED_HEX.sub(
            lambda match: bytes([int(match.group(1), 16)]), text.replace(b"_", b" ")
        )
    data = _NOT_BASE64.sub(b"", text)
    if len(data) % 4 == 1:
        data = data[:-1]
    data += b"=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except binascii.Error:
        return None


def _decode_piece(label: str | None, data: bytes, hint: Hint) -> str:
    if label is None:
        return decode_header_bytes(data, hint)
    return decode_declared(data, label, hint)


def _join_rfc2231(parts: list[tuple[int, bool, bytes]], hint: Hint) -> str:
    """Reassemble ``name*0*=utf-8''%D0%9F; name*1*=%D1%80`` into one decoded value."""
    parts.sort(key=lambda part: part[0])
    charset: str | None = None
    data = bytearray()
    for position, (_, extended, text) in enumerate(parts):
        if extended:
            if position == 0 and text.count(b"'") >= 2:
                label, _, remainder = text.partition(b"'")
                _, _, text = remainder.partition(b"'")
                charset = label.decode("ascii", "replace") or None
            data += unquote_to_bytes(text)
        else:
            data += text
    if charset is None:
        return decode_words(bytes(data), hint)
    return decode_declared(bytes(data), charset, hint)
