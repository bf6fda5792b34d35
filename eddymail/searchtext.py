"""Words as the search index sees them: one tokenizer and one folding for every engine.

SQLite's FTS5 and PostgreSQL's text search each split and fold text their own way (FTS5's
unicode61 keeps "ё" apart from "е"; PostgreSQL's parser makes "anna@example.com" one word
but "anna_b" two). So eddymail splits and folds in Python, the same way for the text it
indexes and for the query, and both engines only ever see the folded words:

- a word is a run of letters and digits (``_`` and punctuation separate words);
- case is folded (``str.casefold``: Cyrillic and Latin alike, "ß" as "ss");
- "ё" is "е", as Russian is usually typed;
- Latin letters lose their accents ("café" is "cafe"); other scripts keep their marks, so
  Cyrillic "й" stays apart from "и" (they are different letters, not a spelling variant).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import NamedTuple

from eddymail.patterns import LazyPattern

# Letters and digits, and the combining accents of decomposed text ("e" + U+0301): those are
# not word characters to ``re``, but must not cut "café" or "й" in two.
WORD = LazyPattern(r"[^\W_](?:[^\W_]|[\u0300-\u036f\u0483-\u0487])*")
_FOLDED_WORD = LazyPattern(r"[^\W_]+")  # in folded text the accents are gone
# Folded ASCII text (no capitals left) is split by its bytes instead: every byte that is
# not a-z or 0-9 becomes a space, then ``split()``. The same words as ``[a-z0-9]+`` in a
# third of the time of the regular expression (every message fetched is split for the index).
_ASCII_WORD_BYTES = bytes(code if chr(code) in "abcdefghijklmnopqrstuvwxyz0123456789" else 32
                          for code in range(256))

MAX_WORD_CHARS = 60
"""Longer runs (base64, hashes, URLs without punctuation) are not words anyone types."""

MAX_WORDS = 20_000
"""Per field of a message: a mail body longer than this is indexed by its beginning."""


def _fold_table() -> dict[int, str | None]:
    """``str.translate`` table: ё as е, Latin letters without accents, loose accents gone."""
    table: dict[int, str | None] = {ord("ё"): "е"}
    for code in (*range(0xC0, 0x250), *range(0x1E00, 0x1F00)):
        decomposed = unicodedata.normalize("NFD", chr(code))
        base, marks = decomposed[0], decomposed[1:]
        # A Latin letter with accents decomposes into an ASCII letter and combining marks.
        if marks and base.isascii() and base.isalpha() and all(map(unicodedata.combining,
                                                                    marks)):
            table[code] = base.lower()
    for code in (*range(0x300, 0x370), *range(0x483, 0x488)):
        table[code] = None  # an accent that composes with nothing ("İ".casefold(), say)
    return table


_FOLD = _fold_table()


def fold(text: str) -> str:
    """``text`` in the form words are indexed and looked up by (the module's docstring)."""
    folded = text.casefold()
    if folded.isascii():
        return folded
    return unicodedata.normalize("NFC", folded).translate(_FOLD)


def folded_words(text: str) -> list[str]:
    """The folded words of ``text``, in order (what the index stores for it)."""
    folded = fold(text)
    if folded.isascii():
        found = folded.encode("ascii").translate(_ASCII_WORD_BYTES).decode("ascii").split()
    else:
        found = _FOLDED_WORD.findall(folded)
    if len(found) <= MAX_WORDS and max(map(len, found), default=0) <= MAX_WORD_CHARS:
        return found  # the usual text: nothing to drop, and no loop in Python to learn it
    return [word for word in found[:MAX_WORDS] if len(word) <= MAX_WORD_CHARS]


def words(text: str) -> Iterator[tuple[int, int, str]]:
    """``(start, end, folded word)`` for the words of ``text`` as written (for snippets)."""
    for count, match in enumerate(WORD.finditer(text)):
        if count >= MAX_WORDS:
            return
        word = match.group()
        if len(word) <= MAX_WORD_CHARS:
            yield match.start(), match.end(), fold(word)


# --- queries --------------------------------------------------------------------------------

MAX_TERMS = 16
"""A query of more terms is refused: nobody types that many, and each one costs a lookup."""

_CHUNK = LazyPattern(r'"([^"]*)"?|(\S+)')


class Term(NamedTuple):
    """One thing a match must contain: a word, or words next to each other (a phrase).

    ``prefix``: the last word may go on ("print*" finds "printer").
    """

    words: tuple[str, ...]
    prefix: bool = False


def parse_query(text: str) -> list[Term]:
    """The terms of a search, all of which must match.

    Words are matched whole, folded as the index folds them (see the module's docstring);
    ``word*`` matches words that begin so; ``"two words"`` matches them side by side, and so
    does what punctuation joins (``anna@example.com``, ``E-42``). Anything else is a word
    separator, so no input is a syntax error; a query without any word gives no terms.
    """
    terms: list[Term] = []
    for match in _CHUNK.finditer(text):
        quoted, bare = match.group(1), match.group(2)
        chunk = quoted if quoted is not None else bare
        found = tuple(folded_words(chunk))
        if not found:
            continue
        prefix = bare is not None and bare.endswith("*")
        term = Term(found, prefix)
        if term not in terms:
            terms.append(term)
    return terms


# What other search boxes read as operators. Here every word must match, so "printer OR
# scanner" would look for the word "or" and "-spam" for "spam": the opposite of the wish.
_OPERATORS = {"OR", "AND", "NOT", "|", "||", "&&"}


def operators_in(text: str) -> list[str]:
    """Operators or ``-word`` exclusions in ``text`` outside quotes (not supported).

    An operator word alone ("NOT") has nothing to work on: it is just a word then.
    """
    chunks = [bare for _quoted, bare in _CHUNK.findall(text)]
    excluded = [bare for bare in chunks if bare.startswith("-") and bare[1:2].isalpha()]
    operators = [bare for bare in chunks if bare in _OPERATORS]
    return excluded + (operators if len(operators) < len(chunks) else [])

