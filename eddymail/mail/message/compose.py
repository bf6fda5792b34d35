"""Compose outgoing mail: strict addresses, injection-proof headers, RFC 5322 bytes for SMTP.

Headers that carry text from people (subject, display name, extra header values) are encoded
and folded here instead of by the ``email`` package. Python before 3.11.10 (CVE-2024-6923)
decodes RFC 2047 encoded words found in a value it is given and writes the decoded CR/LF back
out raw, so a subject such as ``=?utf-8?q?=0D=0ABcc:_x@y?=`` would add a header. It also
RFC 2047-encodes long References/In-Reply-To values, which breaks threading. The MIME body and
attachment parameters stay with the ``email`` package, which handles them correctly.
"""

from __future__ import annotations

import base64
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

# CRLF line endings; cte_type 7bit makes set_content pick quoted-printable or base64 instead
# of 8bit, so the message survives any relay, with or without 8BITMIME.
_POLICY = email_policy.SMTP.clone(cte_type="7bit")

# RFC 2047 wants lines holding encoded words to stay within 76 characters.
_LINE_LIMIT = 76
# 45 bytes -> 60 base64 characters; with "=?utf-8?b?" and "?=" a word is 72 <= 75 characters.
_ENCODED_WORD_BYTES = 45
_ENCODED_WORD_OVERHEAD = len("=?utf-8?b??=")

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
# Bidi overrides let "invoice\u202egpj.exe" display as "invoiceexe.jpg".
_BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069]")
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


def sanitize_header_value(value: str) -> str:
    """Make text safe for one header line: no CR, LF, NUL or other control characters.

    Controls and Unicode line/paragraph separators become spaces, runs of spaces collapse to
    one, the ends are trimmed, lone surrogates become U+FFFD, and bidi embeddings, overrides
    and isolates are dropped (a customer's U+202E must not reverse our "Re:" subject in the
    next reader's inbox). Other characters (non-breaking spaces, Cyrillic, emoji) are kept.
    """
    cleaned = "".join(_clean_character(character) for character in _BIDI_CONTROLS.sub("", value))
    return " ".join(part for part in cleaned.split(" ") if part)


def _clean_character(character: str) -> str:
    category = unicodedata.category(character)
    if category in ("Cc", "Zl", "Zp"):
        return " "
    if category == "Cs":
        return "\ufffd"
    return character


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


class _FoldedHeader(str):
    """A header value this module encoded and folded itself.

    ``EmailPolicy.header_store_parse`` keeps a value whose ``name`` matches the header name
    as it is, and ``EmailPolicy.fold`` calls its ``fold`` method, so the email package never
    re-parses (and re-decodes) the text.
    """

    name: str
    lines: tuple[str, ...]

    def __new__(cls, name: str, atoms: Sequence[str]) -> _FoldedHeader:
        instance = super().__new__(cls, " ".join(atoms))
        instance.name = name
        instance.lines = tuple(_fold(name, atoms))
        return instance

    def fold(self, *, policy: email_policy.Policy) -> str:
        """The header as it goes on the wire, ending with the policy's line separator."""
        return policy.linesep.join(self.lines) + policy.linesep


def _fold(name: str, atoms: Sequence[str]) -> list[str]:
    """Pack atoms into lines; a fold replaces the single space between two atoms."""
    lines: list[str] = []
    line = f"{name}:"
    for atom in atoms:
        # The first atom always stays on the "Name:" line: a header whose value starts on a
        # continuation line is legal, but parsers then keep the leading space of unstructured
        # values, and naive header greps miss a Message-ID on a line of its own.
        if len(line) + 1 + len(atom) > _LINE_LIMIT and line != f"{name}:":
            lines.append(line)
            line = ""
        line += " " + atom
    lines.append(line)
    return lines


def _encoded_words(text: str, first_line_used: int) -> list[str]:
    """RFC 2047 ``B`` words of UTF-8, never splitting a character across two words.

    A word ends after a space where one fits: RFC 2047 decoders drop the whitespace between
    encoded words, but some (Python's own display-name parser among them) keep it, and a
    split after a space then costs them at most a doubled space instead of a broken word.
    """
    room = (_LINE_LIMIT - first_line_used - 1 - _ENCODED_WORD_OVERHEAD) // 4 * 3
    # The first word shares the line with "Name:"; after a very long name it holds at least
    # one character (4 bytes) and overruns 76 a little, far below the 998 limit.
    budget = min(max(room, 4), _ENCODED_WORD_BYTES)
    words: list[str] = []
    chunk = ""
    for character in text:
        if chunk and len((chunk + character).encode("utf-8")) > budget:
            cut = chunk.rfind(" ") + 1
            rest = chunk[cut:] + character
            if cut == 0 or len(rest.encode("utf-8")) > _ENCODED_WORD_BYTES:
                cut = len(chunk)
            words.append(_encoded_word(chunk[:cut].encode("utf-8")))
            chunk = chunk[cut:]
            budget = _ENCODED_WORD_BYTES
        chunk += character
    if chunk:
        words.append(_encoded_word(chunk.encode("utf-8")))
    return words


def _encoded_word(data: bytes) -> str:
    return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="


def _needs_encoding(text: str) -> bool:
    # "=?" in plain text would be decoded by the receiver as the start of an encoded word.
    return not (text.isascii() and text.isprintable()) or "=?" in text


def _unstructured(name: str, text: str) -> _FoldedHeader:
    text = sanitize_header_value(text)
    words = text.split(" ") if text else []
    if _needs_encoding(text) or any(len(word) > _LINE_LIMIT - 2 for word in words):
        words = _encoded_words(text, len(name) + 1) if text else []
    return _FoldedHeader(name, words)


def _mailbox(name: str, display_name: str, address: str) -> _FoldedHeader:
    angle_address = f"<{address}>"
    if not display_name:
        return _FoldedHeader(name, [address])
    quoted = '"' + display_name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if not _needs_encoding(display_name) and len(quoted) <= _LINE_LIMIT - len(name) - 2:
        return _FoldedHeader(name, [quoted, angle_address])
    return _FoldedHeader(name, [*_encoded_words(display_name, len(name) + 1), angle_address])


def _address_header(name: str, addresses: Sequence[str]) -> _FoldedHeader:
    atoms = [address + "," for address in addresses[:-1]] + list(addresses[-1:])
    return _FoldedHeader(name, atoms)


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

    message = EmailMessage(policy=_POLICY)
    message["From"] = _mailbox("From", mail.from_name, mail.from_address)
    if mail.to:
        message["To"] = _address_header("To", mail.to)
    if mail.cc:
        message["Cc"] = _address_header("Cc", mail.cc)
    message["Subject"] = _unstructured("Subject", mail.subject)
    message["Date"] = _FoldedHeader("Date", [format_datetime(when)])
    message["Message-ID"] = _FoldedHeader("Message-ID", [f"<{clean_id}>"])
    if mail.in_reply_to:
        message["In-Reply-To"] = _FoldedHeader("In-Reply-To", [f"<{mail.in_reply_to}>"])
    references = _references(mail)
    if references:
        message["References"] = _FoldedHeader("References", [f"<{ref}>" for ref in references])
    if mail.automatic:
        message["Auto-Submitted"] = _FoldedHeader("Auto-Submitted", [mail.auto_submitted])
        # Keeps Exchange/Outlook from answering with out-of-office and read receipts.
        message["X-Auto-Response-Suppress"] = _FoldedHeader("X-Auto-Response-Suppress", ["All"])
    for name, value in mail.extra_headers.items():
        message[name] = _unstructured(name, value)

    message.set_content(mail.body_text, subtype="plain", charset="utf-8")
    if mail.body_html is not None:
        message.add_alternative(mail.body_html, subtype="html", charset="utf-8")
    for attachment in mail.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
        # Older Outlook versions look for the name on Content-Type, not Content-Disposition.
        message.get_payload()[-1].set_param("name", attachment.filename)
    return message.as_bytes(policy=_POLICY)
