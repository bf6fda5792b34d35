"""One MIME part at a time: its decoded headers, its payload bytes, and back to bytes.

The ``email`` package (compat32 policy) only splits the message; everything a part's
headers say is read here from the raw header bytes, and payloads are taken exactly as
received, then decoded leniently.
"""

from __future__ import annotations

import binascii
import re
from dataclasses import dataclass
from email import policy as email_policy
from email.feedparser import BytesFeedParser
from email.message import Message

from eddymail.mail.message.charsets import lookup_charset
from eddymail.mail.message.headervalues import (
    extract_ids,
    header_bytes,
    parse_parameters,
    raw_header,
    replace_unstorable,
)
from eddymail.mail.message.mimesplit import split_message
from eddymail.mail.message.parselimits import Deadline

_FEED_CHUNK = 256 * 1024
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_PADDING = re.compile(rb"=+")


@dataclass(frozen=True)
class PartInfo:
    """The MIME headers of one part, decoded."""

    content_type: str
    params: dict[str, str]
    disposition: str
    filename: str
    content_id: str | None
    transfer_encoding: str


def parse_bytes(raw: bytes, deadline: Deadline) -> Message:
    """The compat32 ``Message`` tree of ``raw``.

    Regular mail is cut up by ``split_message`` at C speed; anything it declines goes
    through the feed parser in chunks, with the time budget checked between them. compat32
    keeps header values as received, so decoding them (``headervalues``) cannot fail inside
    the parser, and it accepts any garbage without raising.
    """
    message = split_message(raw)
    if message is not None:
        return message
    deadline.check("reading the MIME structure")
    parser = BytesFeedParser(policy=email_policy.compat32)
    for start in range(0, len(raw), _FEED_CHUNK):
        parser.feed(raw[start : start + _FEED_CHUNK])
        deadline.check("reading the MIME structure")
    return parser.close()


def charset_hint(message: Message, limit: int = 50) -> str | None:
    """The charset the first text part declares: the best guess for raw 8-bit headers."""
    for count, part in enumerate(message.walk()):
        if count >= limit:
            break
        value = raw_header(part, "content-type")
        if value is None:
            continue
        content_type, params = parse_parameters(value)
        if content_type.startswith("text/") and lookup_charset(params.get("charset")):
            return params["charset"]
    return None


def part_info(part: Message, hint: str | None) -> PartInfo:
    """Content type, parameters, disposition, filename and Content-ID of one part."""
    raw_type = raw_header(part, "content-type")
    content_type, params = parse_parameters(raw_type, hint) if raw_type else ("", {})
    if content_type.count("/") != 1 or " " in content_type:
        content_type = part.get_default_type()
    raw_disposition = raw_header(part, "content-disposition")
    disposition, disposition_params = (
        parse_parameters(raw_disposition, hint) if raw_disposition else ("", {})
    )
    filename = disposition_params.get("filename") or params.get("name") or ""
    raw_id = raw_header(part, "content-id")
    ids = extract_ids(raw_id, 1) if raw_id else []
    raw_encoding = raw_header(part, "content-transfer-encoding") or b""
    encoding = raw_encoding.decode("ascii", "replace").strip().strip('"').lower()
    return PartInfo(content_type, params, disposition, filename, ids[0] if ids else None, encoding)


def raw_payload(message: Message) -> str | list[Message] | None:
    """The payload as the parser stored it: a list of parts, or the body with its 8-bit
    bytes as surrogates. ``get_payload()`` would decode those bytes with the declared
    charset (and replacement characters) before we could check the charset."""
    return message._payload


def serialize(message: Message, linesep: bytes) -> bytes:
    """A parsed (sub)message as bytes again: headers and leaf bodies exactly as received.

    Only the line breaks the parser consumed (after headers, around boundaries) are
    rewritten with ``linesep``; ``email.generator`` would also refold or re-encode headers.
    """
    out = bytearray()
    for name, value in message.raw_items():
        out += header_bytes(f"{name}: {value}") + linesep
    out += linesep
    payload = raw_payload(message)
    if isinstance(payload, list) and message.get_content_maintype() == "multipart":
        boundary = header_bytes(message.get_boundary() or "")
        if message.preamble is not None:
            out += header_bytes(message.preamble) + linesep
        for child in payload:
            out += b"--" + boundary + linesep + serialize(child, linesep) + linesep
        out += b"--" + boundary + b"--" + linesep
        if message.epilogue:
            out += header_bytes(message.epilogue)
    elif isinstance(payload, list):
        for child in payload:
            out += serialize(child, linesep)
    elif payload:
        out += header_bytes(payload)
    return bytes(out)


def decode_transfer(data: bytes, encoding: str) -> tuple[bytes, str | None]:
    """Undo a Content-Transfer-Encoding leniently: ``(bytes, note of a repair or None)``."""
    if encoding == "base64":
        return _decode_base64(data)
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data), None
    if encoding in ("x-uuencode", "uuencode", "x-uue"):
        return _uudecode(data), None
    if encoding not in ("", "7bit", "8bit", "binary"):
        return data, f"unknown transfer encoding {encoding[:40]!r}; part kept as sent"
    return data, None


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _decode_base64(data: bytes) -> tuple[bytes, str | None]:
    """Base64 with junk characters, missing padding or padding after every line.

    Each stretch up to a padding run is decoded on its own: some mailers encode line by line,
    and a decoder that stops at the first "=" would keep only the first line.
    """
    # The common case, clean base64 with padding only at the very end, decodes in C at once.
    compact = data.translate(None, b" \t\r\n")
    body = compact.rstrip(b"=")
    if len(compact) % 4 == 0 and len(compact) - len(body) <= 2 and not body.translate(
            None, _BASE64_ALPHABET):
        return binascii.a2b_base64(compact), None
    out = bytearray()
    note = None
    for chunk in _PADDING.split(data):
        cleaned = _NOT_BASE64.sub(b"", chunk)
        if len(cleaned) % 4 == 1:
            note = "a base64 part is truncated; its last incomplete byte was dropped"
            cleaned = cleaned[:-1]
        if cleaned:
            out += binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
    return bytes(out), note


def normalize_body(text: str) -> str:
    """``\\n`` line ends, no trailing blanks or blank lines, no byte-order mark in front.

    A bare CR becomes a line break (on a terminal it would return to the start of the line
    and let the next text overwrite what was shown). NUL and lone surrogates become U+FFFD;
    other control characters are kept, like in headers (``headervalues.clean_text``), and
    escaped wherever the text is shown.
    """
    text = replace_unstorable(text.replace("\r\n", "\n").replace("\r", "\n"))
    return "\n".join(line.rstrip() for line in text.removeprefix("\ufeff").split("\n")).strip(
        "\n"
    )


def unflow(text: str, *, delete_space: bool) -> str:
    """Join the soft line breaks of ``format=flowed`` text (RFC 3676)."""
    lines: list[str] = []
    pending: str | None = None
    pending_depth = 0
    for line in text.replace("\r\n", "\n").split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        soft = content.endswith(" ") and content != "-- "
        if soft and delete_space:
            content = content[:-1]
        if pending is not None and depth != pending_depth:
            lines.append(_quoted(pending, pending_depth))
            pending = None
        pending = content if pending is None else pending + content
        pending_depth = depth
        if not soft:
            lines.append(_quoted(pending, depth))
            pending = None
    if pending is not None:
        lines.append(_quoted(pending, pending_depth))
    return "\n".join(lines)


def _quoted(text: str, depth: int) -> str:
    return (">" * depth + " " + text) if depth else text


def _uudecode(data: bytes) -> bytes:
    out = bytearray()
    started = False
    for line in data.splitlines():
        if not started:
            started = line.startswith(b"begin ")
            continue
        if line.strip() in (b"end", b"`"):
            break
        try:
            out += binascii.a2b_uu(line)
        except binascii.Error:
            continue
    return bytes(out)
