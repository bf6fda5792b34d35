"""Making untrusted text safe to show in a terminal.

Anything that came from an email (subjects, names, addresses, bodies, file names) and anything
a server answered may carry escape sequences that clear the screen, move the cursor, set the
window title, write the clipboard (OSC 52), fake hyperlinks (OSC 8), or bidi overrides and
zero-width characters that make text read differently from what it is. ``for_terminal`` turns
each such character into a visible escape (``\\x1b``, ``\\u202e``) so it is shown, not obeyed.
"""

from __future__ import annotations

import re

# C0 controls but \t and \n, DEL, C1 controls, bidi embeddings/overrides/isolates, the bidi
# marks, zero-width and invisible formatting characters, line/paragraph separators, BOM.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]"
)
_UNSAFE_IN_LINE = re.compile(_UNSAFE.pattern[:-1] + "\t\n]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: object, *, multiline: bool = True) -> str:
    """``text`` with every control, bidi and invisible character shown as an escape.

    ``multiline=False`` also escapes tabs and newlines (for table cells and one-line fields).
    """
    if text is None:
        return ""
    text = str(text)
    pattern = _UNSAFE if multiline else _UNSAFE_IN_LINE
    return pattern.sub(_escape, text)


def for_json(document: str) -> str:
    """Escape, inside an already serialised JSON document, the characters json leaves raw.

    ``json.dumps(ensure_ascii=False)`` escapes C0 controls but not C1 controls, bidi
    overrides or zero-width characters; a terminal showing the JSON would obey them.
    """
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", document)
