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

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

# Letters and digits, and the combining accents of decomposed text ("e" + U+0301): those are
# not word characters to ``re``, but must not cut "café" or "й" in two.
WORD = re.compile(r"[^\W_](?:[^\W_]|[\u0300-\u036f\u0483-\u0487])*")

MAX_WORD_CHARS = 60
"""Longer runs (base64, hashes, URLs without punctuation) are not words anyone types."""

MAX_WORDS = 20_000
"""Per field of a message: a mail body longer than this is indexed by its beginning."""


def words(text: str) -> Iterator[tuple[int, int, str]]:
    """``(start, end, folded word)`` for every indexable word of ``text``, in order."""
    for count, match in enumerate(WORD.finditer(text)):
        if count >= MAX_WORDS:
            return
        word = match.group()
        if len(word) <= MAX_WORD_CHARS:
            yield match.start(), match.end(), fold(word)


def folded_words(text: str) -> list[str]:
    """The folded words of ``text``, in order (what the index stores for it)."""
    return [word for _, _, word in words(text)]


def fold(word: str) -> str:
    """The form a word is indexed and looked up by (see the module's docstring)."""
    folded = word.casefold()
    if folded.isascii():
        return folded
    folded = unicodedata.normalize("NFC", folded)
    return "".join(_fold_letter(letter) for letter in folded)


@lru_cache(maxsize=4096)
def _fold_letter(letter: str) -> str:
    if letter.isascii():
        return letter
    if letter == "ё":
        return "е"
    if unicodedata.combining(letter):
        return ""  # an accent that composes with nothing (after "İ".casefold(), say)
    decomposed = unicodedata.normalize("NFD", letter)
    # A Latin letter with accents decomposes into an ASCII letter and combining marks.
    if len(decomposed) > 1 and decomposed[0].isascii() and decomposed[0].isalpha() and all(
            unicodedata.combining(mark) for mark in decomposed[1:]):
        return decomposed[0]
    return letter


# --- queries --------------------------------------------------------------------------------

MAX_TERMS = 16
"""A query of more terms is refused: nobody types that many, and each one costs a lookup."""

_CHUNK = re.compile(r'"([^"]*)"?|(\S+)')


@dataclass(frozen=True)
class Term:
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


def term_matches(term_word: str, prefix: bool, word: str) -> bool:
    """Whether a folded ``word`` of a text matches a query word."""
    return word.startswith(term_word) if prefix else word == term_word
