"""Making untrusted text safe to show in a terminal.

Anything that came from an email (subjects, names, addresses, bodies, file names) and anything
a server answered may carry escape sequences that clear the screen, move the cursor, set the
window title, write the clipboard (OSC 52), fake hyperlinks (OSC 8), or bidi overrides and
zero-width characters that make text read differently from what it is. ``for_terminal`` turns
each such character into a visible escape (``\\x1b``, ``\\u202e``) so it is shown, not obeyed.

The parser keeps these characters in what it stores (so they can be shown); this module is
where they are defused, at the moment of display.
"""

from __future__ import annotations

import re

from eddymail.patterns import LazyPattern

# Every character of the Unicode categories Cc (controls: C0, DEL, C1), Cf (format: bidi
# embeddings, overrides, isolates and marks, zero-width characters, BOM, soft hyphen, the
# invisible "tag" letters used to smuggle text past a reader), Cs (lone surrogates, which a
# UTF-8 terminal cannot even encode), Zl and Zp (line and paragraph separators), as of
# Unicode 14 (a test checks the list against the running Python's tables), plus letters and
# marks that render as nothing (Hangul fillers, the combining grapheme joiner, Khmer inherent
# vowels, Mongolian variation selectors, the supplementary variation selectors). Emoji
# variation selectors (U+FE00-FE0F) stay: they only pick a glyph.
_INVISIBLE_RANGES = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2"
    "\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164"
    "\ud800-\udfff\ufeff\uffa0\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
)
_UNSAFE = LazyPattern(f"[{_INVISIBLE_RANGES}]")
_UNSAFE_IN_LINE = LazyPattern(f"[\t\n{_INVISIBLE_RANGES}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    # JSON spells a character beyond the BMP as its UTF-16 surrogate pair.
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def for_terminal(text: object, *, multiline: bool = True) -> str:
    """``text`` with every control, bidi and invisible character shown as an escape.

    ``multiline=False`` also escapes tabs and newlines (for table cells and one-line fields).
    """
    if text is None:
        return ""
    text = str(text)
    if text.isascii() and text.isprintable():  # nothing to escape (most lines: no regex)
        return text
    pattern = _UNSAFE if multiline else _UNSAFE_IN_LINE
    return pattern.sub(_escape, text)


def for_json(document: str) -> str:
    """Escape, inside an already serialised JSON document, the characters json leaves raw.

    ``json.dumps(ensure_ascii=False)`` escapes C0 controls but not DEL, C1 controls, bidi
    overrides, zero-width characters or lone surrogates; a terminal showing the JSON would
    obey the first ones, and writing the last ones to a UTF-8 stream fails. They only occur
    inside JSON strings (the structure is ASCII), where ``\\uXXXX`` means the same character,
    so the document still parses to exactly the same values.
    """
    return _UNSAFE.sub(_json_escape, document)
