"""A few headers of a stored mail, read from its header block without parsing the message.

For lists of mail that could not be parsed at all (the quarantine: read leniently, enough to
recognise the mail, never enough to trip over it) and of mail eddymail composed itself (the
outbox). :func:`peek_headers` gives each value as one line of at most ``SHOWN_CHARS``
characters; callers still make every value safe for a terminal.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.policy import default as default_policy

#: Longest sender or subject given back (a header can be megabytes long).
SHOWN_CHARS = 200


@dataclass(frozen=True)
class PeekedHeaders:
    """From, Subject (decoded where possible, else as written) and Date (naive UTC)."""

    sender: str
    subject: str
    date: datetime | None


def peek_headers(head: bytes) -> PeekedHeaders:
    """The headers of a header block (or of a message's first bytes) that may be broken in
    any way: unreadable encoded words are shown as written, a bad Date is None."""
    block = head.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    # compat32 hands back each header as written; decoding is done here, and may fail.
    headers = BytesHeaderParser(policy=compat32).parsebytes(block)
    return PeekedHeaders(_text(headers.get("From")), _text(headers.get("Subject")),
                         _date(headers.get("Date")))


def subject_of(raw: bytes) -> str:
    """The decoded Subject of a well-formed mail (one eddymail wrote)."""
    header = raw.split(b"\r\n\r\n", 1)[0]
    parsed = BytesHeaderParser(policy=default_policy).parsebytes(header)
    return str(parsed.get("Subject", ""))


def _text(value: object) -> str:
    if value is None:
        return ""
    try:
        text = str(make_header(decode_header(str(value))))
    except Exception:  # any broken encoded word: the header as written is shown instead
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _date(value: object) -> datetime | None:
    try:
        moment = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):  # missing or unreadable
        return None
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)
