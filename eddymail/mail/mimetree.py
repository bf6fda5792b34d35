"""Walking a message's MIME tree: which parts make the body, which are attachments.

Body rules: in ``multipart/alternative`` the text/plain version wins unless it is blank; in
``multipart/related`` the root part is the body and the rest are attachments (inline
images); in ``multipart/mixed`` every inline text part is body, in order. Any other leaf is
an attachment, and so is a forwarded ``message/rfc822`` (whose text is also shown in the
body when it was forwarded inline or the outer body is empty). Counting parts, depth and
time here is the exact check behind the cheap ``parselimits.precheck``.
"""

from __future__ import annotations

import binascii
import dataclasses
import re
from dataclasses import dataclass, field
from email import policy as email_policy
from email.feedparser import BytesFeedParser
from email.message import Message

from eddymail.errors import MessageParseError
from eddymail.mail.charsets import decode_body, lookup_charset
from eddymail.mail.headervalues import (
    decode_header,
    extract_ids,
    header_bytes,
    parse_parameters,
    raw_header,
)
from eddymail.mail.htmltext import html_to_text
from eddymail.mail.parselimits import Deadline, ParseLimits, precheck

FORWARD_LINE = "---------- Forwarded message ----------"
_FEED_CHUNK = 256 * 1024
_BODY_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff]")
_META_CHARSET = re.compile(
    rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]{1,40})", re.I
)
_GUESSED_BOUNDARY = re.compile(r"^--([^\s\"]{1,200}?)[ \t]*\r?$", re.MULTILINE)
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_DEFAULT_NAMES = {
    "message/delivery-status": "delivery-status.txt",
    "text/rfc822-headers": "original-headers.txt",
    "message/disposition-notification": "read-receipt.txt",
}
_PARSER_DEFECTS: dict[str, str | None] = {
    "CloseBoundaryNotFoundDefect": "a multipart has no closing boundary; it was read to the end",
    "StartBoundaryNotFoundDefect": "a multipart never uses its boundary; it was read as text",
    # A multipart without boundary: the repair in MimeWalker notes what it did instead.
    "NoBoundaryInMultipartDefect": None,
    "MultipartInvariantViolationDefect": None,
    "MissingHeaderBodySeparatorDefect": "a header block does not end with an empty line",
    "FirstHeaderLineIsContinuationDefect": "a header block starts with a continuation line",
    "MisplacedEnvelopeHeaderDefect": "a 'From ' envelope line appears among the headers",
    "InvalidMultipartContentTransferEncodingDefect": "a multipart declares a transfer encoding",
    "InvalidHeaderDefect": "a header line has no name",
}


@dataclass
class AttachmentDraft:
    """An attachment before its display name is made safe (that needs its final number)."""

    name: str
    content_type: str
    content_id: str | None
    inline: bool
    data: bytes
    default_name: str = ""


@dataclass
class Segment:
    """A piece of body: ``plain`` text, ``html`` to convert, or a ``forward`` block."""

    kind: str
    text: str
    inline: bool = True


@dataclass
class Collected:
    """What a walk over one message (or one branch of it) found."""

    segments: list[Segment] = field(default_factory=list)
    attachments: list[AttachmentDraft] = field(default_factory=list)
    has_html: bool = False
    delivery_status: bool = False
    report_original_ids: list[str] = field(default_factory=list)

    def absorb(self, other: Collected, *, body: bool) -> None:
        """Take over another branch's findings; its body only when ``body`` is set."""
        if body:
            self.segments.extend(other.segments)
        self.attachments.extend(other.attachments)
        self.has_html = self.has_html or other.has_html
        self.delivery_status = self.delivery_status or other.delivery_status
        self.report_original_ids.extend(other.report_original_ids)


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
    """Run the compat32 parser over ``raw`` in chunks, checking the time budget between them.

    compat32 keeps header values as received, so decoding them (``headervalues``) cannot
    fail inside the parser, and it accepts any garbage without raising.
    """
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


class MimeWalker:
    """Collects body segments and attachments; raises ``MessageParseError`` over a limit."""

    def __init__(
        self, limits: ParseLimits, deadline: Deadline, defects: list[str], linesep: bytes
    ) -> None:
        self.limits = limits
        self.deadline = deadline
        self.defects = defects
        self.linesep = linesep
        self.parts = 0

    def collect(self, message: Message, depth: int = 0, hint: str | None = None) -> Collected:
        """Walk one message and everything nested in it."""
        found = Collected()
        self._visit(message, depth, hint, found, attachments_only=False, in_report=False)
        return found

    def render(self, found: Collected) -> str:
        """The body text: segments converted and joined, forwards shown when appropriate."""
        rendered: list[tuple[Segment, str]] = []
        for segment in found.segments:
            text = segment.text
            if segment.kind == "html":
                if len(text) > self.limits.max_html_chars:
                    self._note(
                        f"HTML body cut to the first {self.limits.max_html_chars} characters"
                    )
                    text = text[: self.limits.max_html_chars]
                self.deadline.check("converting HTML to text")
                text = html_to_text(text)
            rendered.append((segment, normalize_body(text)))
        has_body = any(text for segment, text in rendered if segment.kind != "forward")
        return "\n\n".join(
            text
            for segment, text in rendered
            if text and (segment.kind != "forward" or segment.inline or not has_body)
        )

    def _visit(
        self,
        part: Message,
        depth: int,
        hint: str | None,
        found: Collected,
        *,
        attachments_only: bool,
        in_report: bool,
    ) -> None:
        self.parts += 1
        limits = self.limits
        if self.parts > limits.max_parts:
            raise MessageParseError(
                f"message has more than {limits.max_parts} MIME parts, "
                f"the limit is {limits.max_parts}"
            )
        if depth > limits.max_depth:
            raise MessageParseError(
                f"message nests MIME parts more than {limits.max_depth} levels deep, "
                f"the limit is {limits.max_depth}"
            )
        self.deadline.check("reading MIME parts")
        for defect in part.defects:
            name = type(defect).__name__
            sentence = _PARSER_DEFECTS.get(name, f"the parser noted {name}")
            if sentence:
                self._note(sentence)
        info = part_info(part, hint)
        maintype = info.content_type.partition("/")[0]
        payload = raw_payload(part)
        if maintype == "multipart" and isinstance(payload, list):
            self._visit_multipart(info, payload, depth, hint, found, attachments_only, in_report)
        elif maintype == "multipart":
            self._repair_multipart(part, info, depth, hint, found, attachments_only, in_report)
        elif (
            maintype == "message"
            and isinstance(payload, list)
            and info.content_type != "message/delivery-status"
        ):
            self._visit_message(part, info, payload, depth, hint, found, in_report)
        else:
            self._visit_leaf(part, info, hint, found, attachments_only, in_report)

    def _visit_multipart(
        self,
        info: PartInfo,
        children: list[Message],
        depth: int,
        hint: str | None,
        found: Collected,
        attachments_only: bool,
        in_report: bool,
    ) -> None:
        children = [child for child in children if isinstance(child, Message)]
        subtype = info.content_type.partition("/")[2]
        if subtype == "alternative" and not attachments_only:
            branches = []
            for child in children:
                branch = Collected()
                self._visit(
                    child, depth + 1, hint, branch, attachments_only=False, in_report=in_report
                )
                branches.append(branch)
            chosen = _choose_alternative(branches)
            for branch in branches:
                found.absorb(branch, body=branch is chosen)
            return
        root = 0
        if subtype == "related":
            start = extract_ids(info.params.get("start", "").encode("utf-8", "replace"), 1)
            for index, child in enumerate(children):
                if start and part_info(child, hint).content_id == start[0]:
                    root = index
        for index, child in enumerate(children):
            only = (
                attachments_only
                or (subtype in ("related", "signed") and index != root)
                or subtype == "encrypted"
            )
            self._visit(
                child,
                depth + 1,
                hint,
                found,
                attachments_only=only,
                in_report=in_report or subtype == "report",
            )

    def _repair_multipart(
        self,
        part: Message,
        info: PartInfo,
        depth: int,
        hint: str | None,
        found: Collected,
        attachments_only: bool,
        in_report: bool,
    ) -> None:
        """A multipart without a usable boundary: guess it from the body, else read as text."""
        payload = raw_payload(part)
        text = payload if isinstance(payload, str) else ""
        guess = _GUESSED_BOUNDARY.search(text)
        if guess is not None and "boundary" not in info.params:
            boundary = guess.group(1).removesuffix("--")
            body = header_bytes(text)
            rebuilt = (
                f'Content-Type: {info.content_type}; boundary="{boundary}"'.encode(
                    "utf-8", "surrogateescape"
                )
                + b"\r\n\r\n"
                + body
            )
            limits = dataclasses.replace(
                self.limits, max_depth=max(0, self.limits.max_depth - depth)
            )
            precheck(rebuilt, limits)
            self._note(
                f"{info.content_type} part has no boundary parameter; "
                f"used {boundary!r} found in its body"
            )
            repaired = parse_bytes(rebuilt, self.deadline)
            self.parts -= 1
            self._visit(
                repaired, depth, hint, found, attachments_only=attachments_only, in_report=in_report
            )
            return
        self._note(f"{info.content_type} part has no usable boundary; read as plain text")
        text_info = dataclasses.replace(info, content_type="text/plain")
        self._visit_leaf(part, text_info, hint, found, attachments_only, in_report)

    def _visit_message(
        self,
        part: Message,
        info: PartInfo,
        payload: list[Message],
        depth: int,
        hint: str | None,
        found: Collected,
        in_report: bool,
    ) -> None:
        inner = payload[0] if payload and isinstance(payload[0], Message) else None
        if inner is None:
            self._visit_leaf(part, info, hint, found, True, in_report)
            return
        if info.transfer_encoding in ("base64", "quoted-printable"):
            # Not allowed for message/* (RFC 2046 5.2.1) but sent anyway: decode and reparse.
            self._note(f"{info.content_type} part is {info.transfer_encoding}-encoded; decoded it")
            data = self._decode_transfer(serialize(inner, self.linesep), info.transfer_encoding)
            limits = dataclasses.replace(
                self.limits, max_depth=max(0, self.limits.max_depth - depth)
            )
            precheck(data, limits)
            inner = parse_bytes(data, self.deadline)
        data = serialize(inner, self.linesep)
        inner_hint = charset_hint(inner) or hint
        subject = decode_header(raw_header(inner, "subject") or b"", inner_hint)
        if info.content_type in ("message/rfc822", "message/global"):
            content_type, default_name = (
                "message/rfc822",
                f"{subject}.eml" if subject else "forwarded-message.eml",
            )
        else:
            content_type, default_name = (
                info.content_type,
                _DEFAULT_NAMES.get(info.content_type, ""),
            )
        found.attachments.append(
            AttachmentDraft(
                info.filename, content_type, info.content_id, _is_inline(info), data, default_name
            )
        )
        if in_report:
            message_id = raw_header(inner, "message-id")
            found.report_original_ids.extend(extract_ids(message_id, 1) if message_id else [])
            return
        if content_type != "message/rfc822":
            return
        inner_found = self.collect(inner, depth + 1, inner_hint)
        found.delivery_status = found.delivery_status or inner_found.delivery_status
        lines = [FORWARD_LINE]
        for label in ("From", "Date", "Subject", "To", "Cc"):
            value = raw_header(inner, label)
            if value is not None:
                lines.append(f"{label}: {decode_header(value, inner_hint)}")
        lines += ["", self.render(inner_found)]
        found.segments.append(
            Segment("forward", "\n".join(lines), inline=info.disposition != "attachment")
        )

    def _visit_leaf(
        self,
        part: Message,
        info: PartInfo,
        hint: str | None,
        found: Collected,
        attachments_only: bool,
        in_report: bool,
    ) -> None:
        data = self._payload(part, info)
        if info.content_type == "message/delivery-status":
            found.delivery_status = True
        is_text_body = info.content_type in ("text/plain", "text/html")
        if (
            is_text_body
            and not attachments_only
            and info.disposition != "attachment"
            and not info.filename
        ):
            label = info.params.get("charset")
            if label is None and info.content_type == "text/html":
                meta = _META_CHARSET.search(data[:8192])
                label = meta.group(1).decode("ascii") if meta else None
            decoded = decode_body(data, label, f"{info.content_type} part")
            if decoded.note:
                self._note(decoded.note)
            text = decoded.text
            if info.content_type == "text/html":
                found.has_html = True
                found.segments.append(Segment("html", text))
                return
            if info.params.get("format", "").lower() == "flowed":
                text = unflow(text, delete_space=info.params.get("delsp", "").lower() == "yes")
            found.segments.append(Segment("plain", text))
            return
        if in_report and info.content_type == "text/rfc822-headers":
            headers = parse_bytes(data, self.deadline)
            message_id = raw_header(headers, "message-id")
            found.report_original_ids.extend(extract_ids(message_id, 1) if message_id else [])
        default_name = _DEFAULT_NAMES.get(info.content_type, "")
        found.attachments.append(
            AttachmentDraft(
                info.filename,
                info.content_type,
                info.content_id,
                _is_inline(info),
                data,
                default_name,
            )
        )

    def _payload(self, part: Message, info: PartInfo) -> bytes:
        payload = raw_payload(part)
        if isinstance(payload, list):
            # message/delivery-status: blocks of fields, kept as they were sent.
            return b"".join(
                serialize(block, self.linesep) for block in payload if isinstance(block, Message)
            )
        return self._decode_transfer(header_bytes(payload or ""), info.transfer_encoding)

    def _decode_transfer(self, data: bytes, encoding: str) -> bytes:
        if encoding == "base64":
            cleaned = _NOT_BASE64.sub(b"", data.split(b"=", 1)[0] if b"=" in data else data)
            if len(cleaned) % 4 == 1:
                self._note("a base64 part is truncated; its last incomplete byte was dropped")
                cleaned = cleaned[:-1]
            try:
                return binascii.a2b_base64(cleaned + b"=" * (-len(cleaned) % 4))
            except binascii.Error:
                self._note("a base64 part cannot be decoded; kept as sent")
                return data
        if encoding == "quoted-printable":
            return binascii.a2b_qp(data)
        if encoding in ("x-uuencode", "uuencode", "x-uue"):
            return _uudecode(data)
        if encoding not in ("", "7bit", "8bit", "binary"):
            self._note(f"unknown transfer encoding {encoding[:40]!r}; part kept as sent")
        return data

    def _note(self, defect: str) -> None:
        if defect not in self.defects and len(self.defects) < 100:
            self.defects.append(defect)


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


def normalize_body(text: str) -> str:
    """``\\n`` line ends, no control characters but tab, no trailing blanks or blank lines."""
    text = _BODY_CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return "\n".join(line.rstrip() for line in text.split("\n")).strip("\n")


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


def _choose_alternative(branches: list[Collected]) -> Collected | None:
    def has(branch: Collected, kind: str) -> bool:
        return any(segment.kind == kind and segment.text.strip() for segment in branch.segments)

    plain = [branch for branch in branches if has(branch, "plain") and not has(branch, "html")]
    if plain:
        return plain[0]
    html = [branch for branch in branches if has(branch, "html")]
    if html:
        return html[-1]
    return branches[0] if branches else None


def _is_inline(info: PartInfo) -> bool:
    return info.disposition == "inline" or (info.disposition == "" and info.content_id is not None)


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
