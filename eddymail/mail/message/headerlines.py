"""Header lines of outgoing mail, encoded and folded here rather than by the ``email`` package.

Headers that carry text from people (subject, display name, extra header values) are made
safe, RFC 2047-encoded and folded by this module and written out as they are. Python before
3.11.10 (CVE-2024-6923) decodes RFC 2047 encoded words found in a value it is given and
writes the decoded CR/LF back out raw, so a subject such as ``=?utf-8?q?=0D=0ABcc:_x@y?=``
would add a header; it also RFC 2047-encodes long References/In-Reply-To values, which
breaks threading. Every function returns the lines of one header, without line ends, in
plain ASCII.
"""

from __future__ import annotations

import base64
import unicodedata
from collections.abc import Sequence

from eddymail.patterns import LazyPattern

# RFC 2047 wants lines holding encoded words to stay within 76 characters.
_LINE_LIMIT = 76
# 45 bytes -> 60 base64 characters; with "=?utf-8?b?" and "?=" a word is 72 <= 75 characters.
_ENCODED_WORD_BYTES = 45
_ENCODED_WORD_OVERHEAD = len("=?utf-8?b??=")
# Bidi overrides let "invoice\u202egpj.exe" display as "invoiceexe.jpg".
_BIDI_CONTROLS = LazyPattern("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def sanitize_header_value(value: str) -> str:
    """Make text safe for one header line: no CR, LF, NUL or other control characters.

    Controls and Unicode line/paragraph separators become spaces, runs of spaces collapse to
    one, the ends are trimmed, lone surrogates become U+FFFD, and bidi embeddings, overrides
    and isolates are dropped (a customer's U+202E must not reverse our "Re:" subject in the
    next reader's inbox). Other characters (non-breaking spaces, Cyrillic, emoji) are kept.
    """
    cleaned = "".join(_clean_character(character) for character in _BIDI_CONTROLS.sub("", value))
    return " ".join(part for part in cleaned.split(" ") if part)


def _clean_character(character: str) -> str:
    category = unicodedata.category(character)
    if category in ("Cc", "Zl", "Zp"):
        return " "
    if category == "Cs":
        return "\ufffd"
    return character


def folded(name: str, atoms: Sequence[str]) -> list[str]:
    """``name`` and its value's atoms packed into lines; a fold replaces the single space
    between two atoms."""
    lines: list[str] = []
    line = f"{name}:"
    for atom in atoms:
        # The first atom always stays on the "Name:" line: a header whose value starts on a
        # continuation line is legal, but parsers then keep the leading space of unstructured
        # values, and naive header greps miss a Message-ID on a line of its own.
        if len(line) + 1 + len(atom) > _LINE_LIMIT and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + atom
    lines.append(line)
    return lines


def unstructured(name: str, text: str) -> list[str]:
    """A free-text header (Subject, extra headers): sanitized, encoded when it must be."""
    text = sanitize_header_value(text)
    words = text.split(" ") if text else []
    if _needs_encoding(text) or any(len(word) > _LINE_LIMIT - 2 for word in words):
        words = _encoded_words(text, len(name) + 1) if text else []
    return folded(name, words)


def mailbox(name: str, display_name: str, address: str) -> list[str]:
    """``Name: "Display Name" <address>``, the name quoted or encoded as it needs."""
    angle_address = f"<{address}>"
    if not display_name:
        return folded(name, [address])
    quoted = '"' + display_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if not _needs_encoding(display_name) and len(quoted) <= _LINE_LIMIT - len(name) - 2:
        return folded(name, [quoted, angle_address])
    return folded(name, [*_encoded_words(display_name, len(name) + 1), angle_address])


def address_list(name: str, addresses: Sequence[str]) -> list[str]:
    """``Name: a@x, b@y`` folded between addresses."""
    atoms = [address + "," for address in addresses[:-1]] + list(addresses[-1:])
    return folded(name, atoms)


def _encoded_words(text: str, first_line_used: int) -> list[str]:
    """RFC 2047 ``B`` words of UTF-8, never splitting a character across two words.

    A word ends after a space where one fits: RFC 2047 decoders drop the whitespace between
    encoded words, but some (Python's own display-name parser among them) keep it, and a
    split after a space then costs them at most a doubled space instead of a broken word.
    """
    room = (_LINE_LIMIT - first_line_used - 1 - _ENCODED_WORD_OVERHEAD) // 4 * 3
    # The first word shares the line with "Name:"; after a very long name it holds at least
    # one character (4 bytes) and overruns 76 a little, far below the 998 limit.
    budget = min(max(room, 4), _ENCODED_WORD_BYTES)
    words: list[str] = []
    chunk = ""
    for character in text:
        if chunk and len((chunk + character).encode("utf-8")) > budget:
            cut = chunk.rfind(" ") + 1
            rest = chunk[cut:] + character
            if cut == 0 or len(rest.encode("utf-8")) > _ENCODED_WORD_BYTES:
                cut = len(chunk)
            words.append(_encoded_word(chunk[:cut].encode("utf-8")))
            chunk = chunk[cut:]
            budget = _ENCODED_WORD_BYTES
        chunk += character
    if chunk:
        words.append(_encoded_word(chunk.encode("utf-8")))
    return words


def _encoded_word(data: bytes) -> str:
    return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="


def _needs_encoding(text: str) -> bool:
    # "=?" in plain text would be decoded by the receiver as the start of an encoded word.
    return not (text.isascii() and text.isprintable()) or "=?" in text
