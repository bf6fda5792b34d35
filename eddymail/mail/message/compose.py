"""Compose outgoing mail: strict addresses, injection-proof headers, RFC 5322 bytes for SMTP.

The message headers are written by ``headerlines`` (encoded and folded by eddymail, never
re-read by the ``email`` package, see there why) and put in front of the MIME entity: the
body and attachments, which the ``email`` package builds correctly through its public
``EmailMessage`` API.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy as email_policy
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from eddymail.errors import ValidationError
from eddymail.mail.message.headerlines import (
    address_list,
    folded,
    mailbox,
    sanitize_header_value,
    unstructured,
)

# CRLF line endings; cte_type 7bit makes set_content pick quoted-printable or base64 instead
# of 8bit, so the message survives any relay, with or without 8BITMIME.
_POLICY = email_policy.SMTP.clone(cte_type="7bit")

# A message id longer than this is garbage (or an attack); it could not fit a 998-octet line.
_MAX_MESSAGE_ID_LENGTH = 900
# RFC 5322 lets a long References chain be trimmed; keeping the root and the most recent ids
# is what mail clients need to thread, and it bounds the header for hostile chains.
_MAX_REFERENCES = 20

_FALLBACK_DOMAIN = "localhost.localdomain"
MESSAGE_ID_PREFIX = "eddymail."

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LOCAL_PART = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_MESSAGE_ID = re.compile(r"[!-;=?-~]+")  # printable ASCII without "<" and ">"
_FIELD_NAME = re.compile(r"[!-9;-~]{1,76}")  # RFC 5322 ftext; 76 keeps "Name:" on one line
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_SURROGATES = re.compile("[\ud800-\udfff]")
_MAX_FILENAME_LENGTH = 200

# Headers build_message writes itself; letting extra_headers set them would duplicate them
# or open a way around address validation.
_RESERVED_HEADERS = frozenset(
    {
        "from", "sender", "reply-to", "to", "cc", "bcc", "subject", "date", "message-id",
        "in-reply-to", "references", "mime-version", "auto-submitted",
        "x-auto-response-suppress", "return-path", "received",
    }
)  # fmt: skip


@dataclass(frozen=True)
class OutgoingAttachment:
    """A file to send along; the name is made safe and the media type checked on creation.

    ``message/*`` and ``multipart/*`` become ``application/octet-stream``: RFC 2046 forbids
    base64 for them, and base64 is what keeps the bytes exact.
    """

    filename: str
    content_type: str
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "filename", _safe_filename(self.filename))
        object.__setattr__(self, "content_type", _safe_media_type(self.content_type))
        object.__setattr__(self, "data", bytes(self.data))


@dataclass(frozen=True)
class OutgoingMail:
    """One mail to send, validated and normalised on creation.

    Addresses must each be one plain addr-spec (``user@example.com``); domains are IDNA-encoded
    and lower-cased; duplicates are dropped (an address in ``to`` is not repeated in ``cc``).
    Message ids are stored without angle brackets; invalid ones in ``in_reply_to`` and
    ``references`` (they come from other people's mail) are dropped rather than failing a
    reply. ``automatic`` marks notifications (RFC 3834). Raises ``ValidationError``.
    """

    from_address: str
    from_name: str
    to: Sequence[str]
    cc: Sequence[str]
    subject: str
    body_text: str
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    attachments: Sequence[OutgoingAttachment] = ()
    automatic: bool = False
    extra_headers: Mapping[str, str] = field(default_factory=dict)
    # RFC 3834: "auto-replied" answers a message's sender, "auto-generated" tells someone else.
    auto_submitted: str = "auto-replied"
    bcc: Sequence[str] = ()  # envelope only: no header names them
    body_html: str | None = None  # an HTML alternative to ``body_text``
    reply_to: Sequence[str] = ()

    def __post_init__(self) -> None:
        def store(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        store("from_address", validate_address(self.from_address))
        store("from_name", sanitize_header_value(self.from_name))
        to = _address_list(self.to, "to")
        seen = {address.casefold() for address in to}
        cc = [address for address in _address_list(self.cc, "cc") if address.casefold() not in seen]
        if not to and not cc and not self.bcc:
            raise ValidationError("An outgoing mail needs at least one recipient.")
        seen.update(address.casefold() for address in cc)
        bcc = [address for address in _address_list(self.bcc, "bcc")
               if address.casefold() not in seen]
        store("to", tuple(to))
        store("cc", tuple(cc))
        store("bcc", tuple(bcc))
        store("subject", sanitize_header_value(self.subject))
        # Lone surrogates (undecodable input) cannot be encoded; NUL is forbidden in mail text.
        store("body_text", _SURROGATES.sub("\ufffd", self.body_text).replace("\x00", ""))
        if self.body_html is not None:
            store("body_html", _SURROGATES.sub("\ufffd", self.body_html).replace("\x00", ""))
        store("in_reply_to", _clean_message_id(self.in_reply_to) if self.in_reply_to else None)
        if isinstance(self.references, str):
            raise TypeError("references must be a list of message ids, not a string")
        references = (_clean_message_id(reference) for reference in self.references)
        store("references", tuple(dict.fromkeys(ref for ref in references if ref)))
        for attachment in self.attachments:
            if not isinstance(attachment, OutgoingAttachment):
                raise TypeError(f"attachments must be OutgoingAttachment, not {attachment!r}")
        store("attachments", tuple(self.attachments))
        store("extra_headers", _validated_extra_headers(self.extra_headers))
        if self.auto_submitted not in ("auto-replied", "auto-generated"):
            raise ValidationError(f"Auto-Submitted cannot be {self.auto_submitted!r}.")
        store("reply_to", tuple(_address_list(self.reply_to, "reply_to")))


def validate_address(address: str) -> str:
    """Return ``address`` normalised if it is exactly one plain addr-spec, else raise.

    Accepts dot-atom local parts only (no quoted strings, no display names, no angle brackets,
    no commas), so nothing can smuggle a second recipient or a header. The domain is
    IDNA-encoded and lower-cased. Non-ASCII local parts would need SMTPUTF8 and are refused.
    """
    hint = "Give one plain address such as support@example.com, without a name or brackets."
    if not isinstance(address, str):
        raise ValidationError(f"{address!r} is not an email address.", hint=hint)
    if any(unicodedata.category(character) in ("Cc", "Zl", "Zp") for character in address):
        raise ValidationError(
            f"The address {address!r} contains a line break or control character.", hint=hint
        )
    local, at, domain = address.strip(" ").rpartition("@")
    ascii_domain = _normalize_domain(domain) if at else None
    # "=?" would let lenient parsers (Python's among them) decode an encoded word there.
    valid_local = _LOCAL_PART.fullmatch(local) and len(local) <= 64 and "=?" not in local
    if not valid_local or ascii_domain is None:
        raise ValidationError(f"{address!r} is not a valid email address.", hint=hint)
    normalized = f"{local}@{ascii_domain}"
    if len(normalized) > 254:
        raise ValidationError(f"The address {address!r} is too long.", hint=hint)
    return normalized


def _normalize_domain(domain: str) -> str | None:
    """IDNA-encode and lower-case a host name; None when it is not a valid one."""
    if not domain or any(character.isspace() for character in domain):
        return None
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    if len(ascii_domain) > 253:
        return None
    if all(_DOMAIN_LABEL.fullmatch(label) for label in ascii_domain.split(".")):
        return ascii_domain
    return None


def _address_list(addresses: Sequence[str], what: str) -> list[str]:
    if isinstance(addresses, str):
        # A bare string would be iterated character by character.
        raise TypeError(f"{what} must be a list of addresses, not a string")
    result: list[str] = []
    seen: set[str] = set()
    for address in addresses:
        normalized = validate_address(address)
        if normalized.casefold() not in seen:
            seen.add(normalized.casefold())
            result.append(normalized)
    return result


def envelope_recipients(mail: OutgoingMail) -> list[str]:
    """The SMTP RCPT TO list: ``to``, ``cc``, ``bcc``, without case-insensitive duplicates."""
    seen: set[str] = set()
    recipients: list[str] = []
    for address in (*mail.to, *mail.cc, *mail.bcc):
        if address.casefold() not in seen:
            seen.add(address.casefold())
            recipients.append(address)
    return recipients


def make_message_id(domain: str) -> str:
    """A new unguessable Message-ID, without angle brackets: ``eddymail.<hex>@<domain>``.

    The token carries 128 random bits. ``domain`` is IDNA-encoded; a full address is accepted
    and its domain used; anything invalid falls back to ``localhost.localdomain``.
    """
    host = domain.rpartition("@")[2].strip() if isinstance(domain, str) else ""
    ascii_host = _normalize_domain(host) or _FALLBACK_DOMAIN
    return f"{MESSAGE_ID_PREFIX}{secrets.token_hex(16)}@{ascii_host}"


def _clean_message_id(value: str) -> str | None:
    """A message id without brackets, or None when it cannot be written safely."""
    if not isinstance(value, str):
        return None
    candidate = value.strip()
    if candidate.startswith("<") and candidate.endswith(">"):
        candidate = candidate[1:-1].strip()
    if len(candidate) > _MAX_MESSAGE_ID_LENGTH or not _MESSAGE_ID.fullmatch(candidate):
        return None
    return candidate


def _validated_extra_headers(headers: Mapping[str, str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise ValidationError(f"{name!r} is not a valid header name.")
        lowered = name.lower()
        if lowered in _RESERVED_HEADERS or lowered.startswith(("content-", "resent-")):
            raise ValidationError(f"The header {name} is set by eddymail itself.")
        if any(existing.lower() == lowered for existing in result):
            raise ValidationError(f"The header {name} is given twice.")
        if not isinstance(value, str):
            raise TypeError(f"the value of header {name} must be a string, not {value!r}")
        result[name] = sanitize_header_value(value)
    return result


def _safe_filename(filename: str) -> str:
    cleaned = sanitize_header_value(filename)  # also without bidi controls
    # The name may come from someone else's mail; a path in it means nothing to the receiver.
    cleaned = cleaned.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if cleaned in ("", ".", ".."):
        return "attachment"
    if len(cleaned) > _MAX_FILENAME_LENGTH:
        stem, dot, extension = cleaned.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            return stem[: _MAX_FILENAME_LENGTH - len(extension) - 1] + "." + extension
        return cleaned[:_MAX_FILENAME_LENGTH]
    return cleaned


def _safe_media_type(content_type: str) -> str:
    media_type = content_type.strip().lower() if isinstance(content_type, str) else ""
    if not _MEDIA_TYPE.fullmatch(media_type) or media_type.startswith(("message/", "multipart/")):
        return "application/octet-stream"
    return media_type


def _references(mail: OutgoingMail) -> list[str]:
    references = list(mail.references)
    # RFC 5322 3.6.4: References ends with the parent's Message-ID; clients that thread on
    # References alone need it even when the caller only knew In-Reply-To.
    if mail.in_reply_to and mail.in_reply_to not in references:
        references.append(mail.in_reply_to)
    if len(references) > _MAX_REFERENCES:
        references = references[:1] + references[-(_MAX_REFERENCES - 1) :]
    return references


def build_message(mail: OutgoingMail, *, message_id: str, date: datetime | None = None) -> bytes:
    """The complete message as RFC 5322 bytes with CRLF line endings, ready for SMTP.

    ``message_id`` is given without brackets (see ``make_message_id``); ``date`` defaults to
    now, a naive one is taken as UTC. The body is UTF-8 text/plain in 7bit, quoted-printable
    or base64 (never 8bit), with an HTML alternative when there is one; attachments follow
    in a multipart/mixed with RFC 2231 file names. Bcc recipients appear in no header.
    Raises ``ValidationError`` for an unusable message id.
    """
    clean_id = _clean_message_id(message_id)
    if clean_id is None:
        raise ValidationError(f"{message_id!r} is not a usable Message-ID.")
    when = date or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)

    lines = mailbox("From", mail.from_name, mail.from_address)
    if mail.to:
        lines += address_list("To", mail.to)
    if mail.cc:
        lines += address_list("Cc", mail.cc)
    if mail.reply_to:
        lines += address_list("Reply-To", mail.reply_to)
    lines += unstructured("Subject", mail.subject)
    lines += folded("Date", [format_datetime(when)])
    lines += folded("Message-ID", [f"<{clean_id}>"])
    if mail.in_reply_to:
        lines += folded("In-Reply-To", [f"<{mail.in_reply_to}>"])
    references = _references(mail)
    if references:
        lines += folded("References", [f"<{ref}>" for ref in references])
    if mail.automatic:
        lines += folded("Auto-Submitted", [mail.auto_submitted])
        # Keeps Exchange/Outlook from answering with out-of-office and read receipts.
        lines += folded("X-Auto-Response-Suppress", ["All"])
    for name, value in mail.extra_headers.items():
        lines += unstructured(name, value)

    # The MIME entity alone: its own header (MIME-Version, Content-*) follows ours.
    entity = EmailMessage(policy=_POLICY)
    entity.set_content(mail.body_text, subtype="plain", charset="utf-8")
    if mail.body_html is not None:
        entity.add_alternative(mail.body_html, subtype="html", charset="utf-8")
    for attachment in mail.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        entity.add_attachment(attachment.data, maintype=maintype, subtype=subtype,
                              filename=attachment.filename)
        # Older Outlook versions look for the name on Content-Type, not Content-Disposition.
        *_, added = entity.iter_parts()
        added.set_param("name", attachment.filename)
    head = "".join(line + "\r\n" for line in lines).encode("ascii")
    return head + entity.as_bytes(policy=_POLICY)


def stand_in_message(*, sender: str | None, subject: str | None, message_id: str | None,
                     date: datetime, body: str) -> bytes:
    """A plain mail standing in for one whose bytes were not kept (an export of an old
    thread): the headers given, each on one line (none can be injected); a header even the
    policy's parser cannot make sense of is left out."""
    rebuilt = EmailMessage()
    for header, value in (("From", sender), ("Subject", subject), ("Message-ID", message_id)):
        if value:
            try:
                rebuilt[header] = " ".join(str(value).split())
            except ValueError:
                continue
    rebuilt["Date"] = format_datetime(date)
    rebuilt.set_content(body)
    return rebuilt.as_bytes()
