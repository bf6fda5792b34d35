"""Walking a message's MIME tree: which parts make the body, which are attachments.

Body rules: in ``multipart/alternative`` the text/plain version wins unless it is blank; in
``multipart/related`` the root part is the body and the rest are attachments (inline
images); in ``multipart/mixed`` every inline text part is body, in order. Any other leaf is
an attachment, and so is a forwarded ``message/rfc822`` (whose text is also shown in the
body when it was forwarded inline or the outer body is empty). Counting parts, depth and
time here is the exact check behind the cheap ``parselimits.precheck``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from email.message import Message

from eddymail.errors import MessageParseError
from eddymail.mail.message.charsets import decode_body
from eddymail.mail.message.headervalues import decode_header, extract_ids, header_bytes, raw_header
from eddymail.mail.message.htmltext import html_to_text
from eddymail.mail.message.mimeparts import (
    PartInfo,
    charset_hint,
    decode_transfer,
    normalize_body,
    parse_bytes,
    part_info,
    raw_payload,
    serialize,
    unflow,
)
from eddymail.mail.message.parselimits import Deadline, ParseLimits, precheck

FORWARD_LINE = "---------- Forwarded message ----------"
_META_CHARSET = re.compile(
    rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]{1,40})", re.I
)
_GUESSED_BOUNDARY = re.compile(r"^--([^\s\"]{1,200}?)[ \t]*\r?$", re.MULTILINE)
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
        # One budget for the whole message, forwarded messages included: converting HTML
        # costs seconds per megabyte of table cells, so twenty 1 MB parts would cost minutes.
        self.html_budget = limits.max_html_chars

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
                if len(text) > self.html_budget:
                    self._note(
                        f"HTML body cut to the first {self.limits.max_html_chars} characters"
                    )
                    text = text[: self.html_budget]
                self.html_budget -= len(text)
                self.deadline.check("converting HTML to text")
                text = html_to_text(text) if text else ""
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
        inner_text = self.render(inner_found)
        if len(lines) == 1 and not inner_text:
            return
        lines += ["", inner_text]
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
        decoded, note = decode_transfer(data, encoding)
        if note:
            self._note(note)
        return decoded

    def _note(self, defect: str) -> None:
        if defect not in self.defects and len(self.defects) < 100:
            self.defects.append(defect)


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
