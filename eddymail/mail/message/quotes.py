"""Telling the new text of an e-mail reply from the history it quotes.

Mail clients quote the previous messages below (or above) the new text: lines starting with
``>``, introduced by an attribution line ("On Mon, Anna wrote:", "27.11.2026 10:00, Иван
пишет:"), or an Outlook header block ("-----Original Message-----", "From: ... Sent: ...").
``split_quoted`` keeps the new text and counts the folded lines, so ``ticket show`` can fold
the history away and show it on request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ATTRIBUTION = re.compile(
    r"^(on\s.+\bwrote:|am\s.+\bschrieb\b.*:|le\s.+\ba écrit\s?:|.+\s(пишет|написал\(а\)|"
    r"написала|написал)\s?:|.+\bwrote:)\s*$",
    re.IGNORECASE,
)
_SEPARATORS = re.compile(
    r"^(-{2,}\s*(original message|исходное сообщение|пересылаемое сообщение|"
    r"forwarded message)\s*-{2,}|_{10,})\s*$",
    re.IGNORECASE,
)
_OUTLOOK_HEADER = re.compile(r"^(from|от|von|de)\s*:\s*.+", re.IGNORECASE)
_OUTLOOK_DATE = re.compile(r"^(sent|date|отправлено|gesendet|envoyé)\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class SplitText:
    """The new text of a message and the quoted history after it."""

    text: str
    quoted: str

    @property
    def quoted_lines(self) -> int:
        """How many lines were folded away."""
        return len(self.quoted.splitlines()) if self.quoted else 0


def split_quoted(body: str) -> SplitText:
    """Cut ``body`` where the quoted history starts (top-posted replies, the common case).

    An inline reply (answers between quoted lines) is kept whole: folding its quotes would
    take away what the answers refer to. Only a trailing block of ``>`` lines is folded.
    """
    lines = body.splitlines()
    for index, line in enumerate(lines):
        if _starts_history(line.strip(), lines[index + 1:index + 3]):
            new = "\n".join(lines[:index]).rstrip()
            if new:
                return SplitText(new, "\n".join(lines[index:]))
            break
    end = len(lines)
    while end and (lines[end - 1].lstrip().startswith(">") or not lines[end - 1].strip()):
        end -= 1
    if end and any(line.lstrip().startswith(">") for line in lines[end:]):
        return SplitText("\n".join(lines[:end]).rstrip(), "\n".join(lines[end:]).strip("\n"))
    return SplitText(body.rstrip(), "")


def _starts_history(line: str, following: list[str]) -> bool:
    if ":" not in line and not line.startswith(("-", "_")):  # no pattern below can match
        return False
    if _SEPARATORS.match(line):
        return True
    if _ATTRIBUTION.match(line) and (not following or following[0].lstrip().startswith(">")
                                     or not following[0].strip()):
        return True
    return bool(_OUTLOOK_HEADER.match(line)) and any(
        _OUTLOOK_DATE.match(f.strip()) for f in following
    )
