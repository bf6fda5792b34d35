"""Subject lines: reply/forward prefixes and ticket tags such as ``[#123]``.

A ticket tag format is any text containing ``{id}`` exactly once (``[#{id}]``,
``[Ticket #{id}]``, ``(#{id})``); the rest is matched literally, except that letter case and
the amount of whitespace do not matter, because mail clients and folding change both.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from eddymail.errors import ValidationError
from eddymail.mail.message.headerlines import sanitize_header_value
from eddymail.patterns import LazyPattern

DEFAULT_TAG_FORMAT = "[#{id}]"
NO_SUBJECT = "(no subject)"

# Prefixes mail clients put in front of replies and forwards, in the languages our users
# write in. Short words that start real subjects ("R:" for the R language, Italian "I:")
# are left out on purpose: stripping a real word is worse than keeping a stray prefix.
_PREFIX_WORDS = (
    "re", "fwd", "fw", "aw", "wg", "sv", "vs", "vb", "vl", "antw", "doorst", "rif", "tr",
    "odp", "pd", "res", "enc", "rv", "ynt", "ответ", "отв", "на", "пересл", "відп", "回复",
    "回覆", "答复", "转发", "轉寄",
)  # fmt: skip
# Counters: "Re[2]:", "Re(2):", "Re^2:"; French Outlook writes "RE :"; CJK uses a full-width colon.
_PREFIXES = LazyPattern(
    r"^(?:\s*(?:"
    + "|".join(sorted(_PREFIX_WORDS, key=len, reverse=True))
    + r")\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：])+\s*",
    re.IGNORECASE,
)
# Ticket numbers are bounded so a 5000-digit "tag" cannot reach int() (which refuses it).
_TICKET_NUMBER = "([0-9]{1,18})"


def strip_reply_prefixes(subject: str) -> str:
    """Remove every leading reply/forward prefix: ``"Re: Fwd: AW: x"`` -> ``"x"``.

    Case-insensitive; takes counters (``Re[2]:``) and English, German, Scandinavian, Dutch,
    Italian, Polish, Russian, Ukrainian and Chinese spellings. Only the start is touched.
    """
    return _PREFIXES.sub("", subject, count=1)


@lru_cache(maxsize=32)
def _tag_pattern(tag_format: str) -> re.Pattern[str]:
    """The regex for a tag format: the literal parts escaped, ``{id}`` a captured number."""
    if not isinstance(tag_format, str) or tag_format.count("{id}") != 1:
        raise ValidationError(
            f"The ticket tag format {tag_format!r} must contain {{id}} exactly once.",
            hint='For example "[#{id}]" or "[Ticket #{id}]".',
        )
    if any(unicodedata.category(character) in ("Cc", "Zl", "Zp") for character in tag_format):
        raise ValidationError(f"The ticket tag format {tag_format!r} must be one plain line.")
    before, after = tag_format.strip().split("{id}")
    # With nothing literal on a side, the number must not be part of a longer word
    # ("abc42"); with a literal, it only must not be part of a longer number.
    lead = r"(?<![0-9])" if before else r"(?<!\w)"
    trail = r"(?![0-9])" if after else r"(?!\w)"
    return re.compile(
        _literal(before) + lead + _TICKET_NUMBER + trail + _literal(after), re.IGNORECASE
    )


def validate_tag_format(tag_format: str) -> None:
    """Raise ``ValidationError`` unless ``tag_format`` is a usable ticket tag format."""
    _tag_pattern(tag_format)


def _literal(text: str) -> str:
    parts = re.split(r"(\s+)", text)
    return "".join(r"\s+" if part.isspace() else re.escape(part) for part in parts if part)


def _render_tag(ticket_id: int, tag_format: str) -> str:
    _tag_pattern(tag_format)  # validates the format
    if isinstance(ticket_id, bool) or not isinstance(ticket_id, int) or ticket_id < 0:
        raise ValidationError(f"{ticket_id!r} is not a ticket number.")
    return tag_format.strip().replace("{id}", str(ticket_id))


def find_ticket_tags(subject: str, tag_format: str = DEFAULT_TAG_FORMAT) -> list[int]:
    """Ticket numbers tagged in a subject, first occurrence first, without repeats.

    ``"Re: [#123] x"`` -> ``[123]``. Raises ``ValidationError`` for a format without ``{id}``.
    """
    numbers = (int(match.group(1)) for match in _tag_pattern(tag_format).finditer(subject))
    return list(dict.fromkeys(numbers))


def strip_ticket_tags(subject: str, tag_format: str = DEFAULT_TAG_FORMAT) -> str:
    """Remove every tag of ``tag_format`` (whatever its number) and tidy the spaces left."""
    return sanitize_header_value(_tag_pattern(tag_format).sub(" ", subject))


def _bare_subject(subject: str, tag_format: str) -> str:
    """The subject without prefixes and tags, even when they alternate ("[#1] Re: [#1] x")."""
    text = sanitize_header_value(subject)
    while True:
        stripped = strip_reply_prefixes(strip_ticket_tags(strip_reply_prefixes(text), tag_format))
        stripped = sanitize_header_value(stripped)
        if stripped == text:
            return text or NO_SUBJECT
        text = stripped


def reply_subject(original: str, ticket_id: int, tag_format: str = DEFAULT_TAG_FORMAT) -> str:
    """Subject for a staff reply: exactly one ``Re:`` and one tag, ``"Re: [#123] x"``.

    Prefixes and tags that piled up in the original (in any order, of any ticket number) are
    dropped first; an empty subject becomes ``"(no subject)"``.
    """
    return f"Re: {_render_tag(ticket_id, tag_format)} {_bare_subject(original, tag_format)}"
