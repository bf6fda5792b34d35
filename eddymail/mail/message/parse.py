"""Raw message bytes in, a safe structured ``ParsedMessage`` out.

Every message is hostile input. ``parse_message`` runs one pipeline:

1. ``parselimits.precheck`` refuses, cheaply, anything over ``ParseLimits`` (size, header
   block, one header field, part count, nesting, parameter count);
2. ``mimesplit.split`` cuts the bytes into parts (its own fast splitter, or the standard
   library's lenient feed parser for odd mail), decoding nothing;
3. ``parttree.build_tree`` walks that once into a decoded ``Part`` tree, enforcing the
   limits and the deadline as it goes;
4. everything else reads the tree only: ``body`` picks the body text (charsets checked,
   HTML converted) and the attachments, ``classify`` the loop-protection signals,
   ``authresults`` the provider's verdicts, and this module the addresses, ids and date
   (with ``headervalues`` and ``addresslist``).

The ``email`` package's ``policy.default`` is not used: it raises on some garbage headers
and decodes values in ways that changed between patch releases. The raw bytes are never
modified.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from eddymail.errors import MessageParseError
from eddymail.mail.message.addresslist import parse_address_list
from eddymail.mail.message.authresults import authentication_results
from eddymail.mail.message.body import BodyReader
from eddymail.mail.message.charsets import decode_header_bytes
from eddymail.mail.message.classify import classify
from eddymail.mail.message.filenames import clean_original, safe_filename
from eddymail.mail.message.headerrepair import repair_header_block
from eddymail.mail.message.headervalues import extract_ids, parse_date, unfold
from eddymail.mail.message.mimesplit import split
from eddymail.mail.message.parselimits import Deadline, ParseLimits, precheck
from eddymail.mail.message.parttree import Headers, build_tree
from eddymail.patterns import LazyPattern

__all__ = [
    "DEFAULT_LIMITS",
    "Address",
    "ParseLimits",
    "ParsedAttachment",
    "ParsedMessage",
    "parse_message",
]

DEFAULT_LIMITS = ParseLimits()
MAX_REFERENCES = 50
MAX_ADDRESS_HEADER_CHARS = 64 * 1024
_BOUNCED_ID = LazyPattern(
    r"^[ \t>]*message-id:[ \t]*<([^<>\s]{1,250})>", re.IGNORECASE | re.MULTILINE
)


class Address(NamedTuple):
    """A mailbox: ``address`` (domain lower-cased, local part as sent) and display ``name``."""

    address: str
    name: str = ""

    def to_json(self) -> dict[str, str]:
        """``{"address": ..., "name": ...}``."""
        return {"address": self.address, "name": self.name}


# eq off (and repr too for ParsedMessage): never compared, and each generated method is
# compiled at import (every start-up of ``ingest``).
@dataclass(frozen=True, eq=False)
class ParsedAttachment:
    """One attachment, inline image or forwarded message.

    ``filename`` is safe to display and to use as one file name (no path parts, ``..``,
    reserved names; a control or bidi character became "_"; at most 200 characters;
    ``attachment-N.ext`` when none was given); ``original_filename`` is the decoded name as
    sent, for the record ("" when none), controls kept like in headers. ``data`` is bytes,
    or a read-only view of the raw message's bytes when it came without a transfer encoding
    (8bit, binary): no copy of a big one is made.
    """

    filename: str
    original_filename: str
    content_type: str
    size: int
    content_id: str | None
    inline: bool
    data: bytes | memoryview = field(repr=False)


@dataclass(frozen=True, eq=False, repr=False)
class ParsedMessage:
    """What eddymail makes of one message; ``to_json`` is the ``mail inspect`` document.

    Text values keep the control, bidi and zero-width characters the sender wrote (one-line
    values have their line breaks turned into spaces; NUL becomes U+FFFD): whatever shows
    them escapes them (``safetext``), whatever mails them strips them (``compose``).
    ``automatic_reasons`` lists every loop-protection signal found: answer a message
    automatically only when it is empty. ``authentication_results`` are the values of its
    Authentication-Results headers, topmost first (see ``authresults.verify_sender``).
    """

    subject: str
    from_: Address | None
    from_all: list[Address]
    sender_valid: bool
    to: list[Address]
    cc: list[Address]
    reply_to: list[Address]
    date: datetime | None
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    body_text: str
    has_html: bool
    attachments: list[ParsedAttachment]
    auto_reply: bool
    bounce: bool
    mailing_list: bool
    automatic_reasons: list[str]
    bounce_original_message_id: str | None
    defects: list[str]
    authentication_results: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON document of ``eddymail mail inspect`` (exactly these keys)."""
        return {
            "subject": self.subject,
            "from": self.from_.to_json() if self.from_ else None,
            "to": [address.to_json() for address in self.to],
            "cc": [address.to_json() for address in self.cc],
            "reply_to": [address.to_json() for address in self.reply_to],
            "date": self.date.strftime("%Y-%m-%dT%H:%M:%SZ") if self.date else None,
            "message_id": self.message_id,
            "in_reply_to": list(self.in_reply_to),
            "references": list(self.references),
            "body_text": self.body_text,
            "has_html": self.has_html,
            "attachments": [
                {"filename": item.filename, "content_type": item.content_type, "size": item.size}
                for item in self.attachments
            ],
            "auto_reply": self.auto_reply,
            "bounce": self.bounce,
            "mailing_list": self.mailing_list,
        }


def parse_message(raw: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> ParsedMessage:
    """Parse one raw message; ``MessageParseError`` when it is over a limit or unreadable.

    Anything else wrong with a message (bad charsets, broken MIME, garbage headers) is
    repaired and noted in ``defects`` instead of raising.
    """
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise TypeError(f"parse_message needs bytes, not {type(raw).__name__}")
    deadline = Deadline(limits.max_seconds)
    precheck(raw, limits)
    try:
        return _parse(raw, limits, deadline)
    except MessageParseError:
        raise
    except Exception as error:
        # A bug met by one hostile message must quarantine that message, not stop the fetch.
        raise MessageParseError(
            f"message could not be parsed ({type(error).__name__}: {str(error)[:200]})"
        ) from error


def _parse(raw: bytes, limits: ParseLimits, deadline: Deadline) -> ParsedMessage:
    raw, repairs = repair_header_block(raw)
    defects: list[str] = list(repairs)
    linesep = b"\r\n" if raw.find(b"\r\n", 0, 65536) >= 0 else b"\n"
    root = build_tree(split(raw, deadline), limits, deadline, defects, linesep)
    reader = BodyReader(limits, deadline, defects)
    found = reader.collect(root)
    body_text = reader.render(found)
    deadline.check("reading headers")

    headers = root.headers
    from_all, from_invalid = _addresses(headers, "from", defects)
    classification = classify(
        headers,
        content_type=root.declared.content_type,
        report_type=root.declared.params.get("report-type", "").lower(),
        sender_local_parts=[item.address.rpartition("@")[0].lower() for item in from_all],
        delivery_status=found.delivery_status,
    )
    bounced_id = found.report_original_ids[0] if found.report_original_ids else None
    if bounced_id is None and classification.bounce:
        match = _BOUNCED_ID.search(body_text)
        bounced_id = match.group(1) if match else None

    attachments = []
    for index, draft in enumerate(found.attachments, start=1):
        attachments.append(
            ParsedAttachment(
                # From the full name: the capped original may have lost its extension.
                filename=safe_filename(draft.name or draft.default_name, index, draft.content_type),
                original_filename=clean_original(draft.name),
                content_type=draft.content_type,
                size=len(draft.data),
                content_id=draft.content_id,
                inline=draft.inline,
                data=draft.data,
            )
        )

    message_id = headers.first("message-id")
    ids = extract_ids(message_id, 1) if message_id else []
    date = headers.first("date")
    return ParsedMessage(
        subject=headers.text("subject"),
        from_=from_all[0] if from_all else None,
        from_all=from_all,
        sender_valid=len(from_all) == 1 and from_invalid == 0,
        to=_addresses(headers, "to", defects)[0],
        cc=_addresses(headers, "cc", defects)[0],
        reply_to=_addresses(headers, "reply-to", defects)[0],
        date=parse_date(date) if date else None,
        message_id=ids[0] if ids else None,
        in_reply_to=_ids(headers, "in-reply-to", keep_last=False),
        references=_ids(headers, "references", keep_last=True),
        body_text=body_text,
        has_html=found.has_html,
        attachments=attachments,
        auto_reply=classification.auto_reply,
        bounce=classification.bounce,
        mailing_list=classification.mailing_list,
        automatic_reasons=classification.reasons,
        bounce_original_message_id=bounced_id,
        defects=defects,
        authentication_results=authentication_results(headers),
    )


def _addresses(headers: Headers, name: str, defects: list[str]) -> tuple[list[Address], int]:
    """All addresses of every ``name`` header, and how many entries were not addresses."""
    found: list[Address] = []
    invalid = 0
    for raw in headers.all(name):
        # Raw 8-bit bytes are decoded now; encoded words only after the structure is known.
        text = decode_header_bytes(unfold(raw), headers.hint)
        if len(text) > MAX_ADDRESS_HEADER_CHARS:
            defects.append(f"{name} header cut to {MAX_ADDRESS_HEADER_CHARS} characters")
            text = text[:MAX_ADDRESS_HEADER_CHARS]
        pairs, bad = parse_address_list(text)
        invalid += bad
        found += [Address(address, display) for address, display in pairs]
    if invalid:
        defects.append(f"{name} header has {invalid} entries that are not valid addresses")
    return found, invalid


def _ids(headers: Headers, name: str, *, keep_last: bool) -> list[str]:
    values = headers.all(name)
    if not values:
        return []
    return extract_ids(b" ".join(values), MAX_REFERENCES, keep_last=keep_last)
