"""Attachment names as staff see them: the real extension cannot hide.

A sender pads ``invoice.pdf`` with hundreds of invisible or blank characters (the braille
blank U+2800, Hangul fillers, zero-width and bidi marks, long runs of spaces) and ends it in
``.exe``: a table cell or a terminal line shows ``invoice.pdf⠀⠀⠀…`` and the ``.exe`` falls
off the edge. Such runs are shown as ``[N blank characters]`` and the real extension, the
text after the last dot, is named on its own.
"""

from __future__ import annotations

import unicodedata

# Characters that draw nothing, or nothing but blank space, though they are not spaces.
_BLANK_LOOKING = frozenset(
    "\u115f\u1160\u3164\uffa0"  # Hangul fillers
    "\u2800"  # braille pattern blank
    "\u034f\u180e\u2060\u2061\u2062\u2063\u2064\ufeff"  # joiners, invisible operators
    "\u17b4\u17b5"  # Khmer inherent vowels (invisible)
)
#: A run of this many ordinary spaces (or any invisible character) is named, not shown.
SPACES_SHOWN = 1


def _invisible(character: str) -> bool:
    category = unicodedata.category(character)
    if character in _BLANK_LOOKING or category in ("Cf", "Zl", "Zp", "Cc"):
        return True
    if category == "Mn":  # a mark that combines with nothing visible draws nothing
        return not unicodedata.combining(character)
    if category == "Zs":  # every space but the ordinary one (no-break, em, ideographic...)
        return character != " "
    # Variation selectors and tag characters.
    return "\ufe00" <= character <= "\ufe0f" or "\U000e0000" <= character <= "\U000e0fff"


def _blank(character: str) -> bool:
    return character == " " or _invisible(character)


def shown_name(filename: str) -> str:
    """``filename`` with every run of blank or invisible characters named by its length.

    A single ordinary space between words stays a space.
    """
    pieces: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if not run:
            return
        if run == [" "] * len(run) and len(run) <= SPACES_SHOWN:
            pieces.append(" " * len(run))
        else:
            pieces.append(f"[{len(run)} blank character{'s' if len(run) > 1 else ''}]")
        run.clear()

    for character in filename:
        if _blank(character):
            run.append(character)
            continue
        flush()
        pieces.append(character)
    flush()
    return "".join(pieces)


def real_extension(filename: str) -> str:
    """The extension a file manager goes by: after the last dot, blanks left out ("" if none)."""
    visible = "".join(character for character in filename if not _blank(character))
    stem, dot, extension = visible.rpartition(".")
    return f".{extension.lower()}" if dot and stem and extension else ""
