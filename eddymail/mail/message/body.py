"""Which parts of the part tree make the body, which are attachments.

Body rules: in ``multipart/alternative`` the text/plain version wins unless it is blank; in
``multipart/related`` the root part is the body and the rest are attachments (inline
images); in ``multipart/mixed`` every inline text part is body, in order. Any other leaf is
an attachment, and so is a forwarded ``message/rfc822`` (whose text is also shown in the
body when it was forwarded inline or the outer body is empty). Text is decoded by its
declared charset here (checked, detected when missing or lying) and HTML turned into text,
within one budget for the whole message.
"""

from __future__ import annotations

from typing import NamedTuple

from eddymail.mail.message.charsets import decode_body
from eddymail.mail.message.headervalues import extract_ids, replace_unstorable
from eddymail.mail.message.parselimits import Deadline, ParseLimits
from eddymail.mail.message.parttree import Headers, MimeInfo, Part, note

FORWARD_LINE = "---------- Forwarded message ----------"
_FORWARD_HEADERS = ("From", "Date", "Subject", "To", "Cc")
_DEFAULT_NAMES = {
    "message/delivery-status": "delivery-status.txt",
    "text/rfc822-headers": "original-headers.txt",
    "message/disposition-notification": "read-receipt.txt",
}


def html_to_text(html: str) -> str:
    """HTML as readable text (``htmltext.html_to_text``).

    The converter, with lxml and inscriptis, is imported on first use: a run that meets no
    HTML mail (a mail server piping plain text into ``ingest``) never loads it.
    """
    from eddymail.mail.message import htmltext

    return htmltext.html_to_text(html)


class AttachmentDraft(NamedTuple):
    """An attachment before its display name is made safe (that needs its final number)."""

    name: str
    content_type: str
    content_id: str | None
    inline: bool
    data: bytes | memoryview
    default_name: str = ""


class Segment(NamedTuple):
    """A piece of body: ``plain`` text, ``html`` to convert, or a ``forward`` block."""

    kind: str
    text: str
    inline: bool = True


class Collected:
    """What a look at one message (or one branch of it) found.

    A plain class, not a dataclass: it is made once per branch and never compared or
    printed, and a dataclass would compile its methods on every start-up of ``ingest``.
    """

    __slots__ = ("attachments", "delivery_status", "has_html", "report_original_ids",
                 "segments")

    def __init__(self) -> None:
        self.segments: list[Segment] = []
        self.attachments: list[AttachmentDraft] = []
        self.has_html = False
        self.delivery_status = False
        self.report_original_ids: list[str] = []

    def absorb(self, other: Collected, *, body: bool) -> None:
        """Take over another branch's findings; its body only when ``body`` is set."""
        if body:
            self.segments.extend(other.segments)
        self.attachments.extend(other.attachments)
        self.has_html = self.has_html or other.has_html
        self.delivery_status = self.delivery_status or other.delivery_status
        self.report_original_ids.extend(other.report_original_ids)


class BodyReader:
    """Collects body segments and attachments from a part tree and renders the body text."""

    def __init__(self, limits: ParseLimits, deadline: Deadline, defects: list[str]) -> None:
        self.limits = limits
        self.deadline = deadline
        self.defects = defects
        # One budget for the whole message, forwarded messages included: converting HTML
        # costs seconds per megabyte of table cells, so twenty 1 MB parts would cost minutes.
        self.html_budget = limits.max_html_chars

    def collect(self, message: Part) -> Collected:
        """Look at one message and everything nested in it."""
        found = Collected()
        self._visit(message, found, attachments_only=False, in_report=False)
        return found

    def render(self, found: Collected) -> str:
        """The body text: segments converted and joined, forwards shown when appropriate."""
        rendered: list[tuple[Segment, str]] = []
        for segment in found.segments:
            text = segment.text
            if segment.kind == "html":
                if len(text) > self.html_budget:
                    note(self.defects,
                         f"HTML body cut to the first {self.limits.max_html_chars} characters")
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

    def _visit(self, part: Part, found: Collected, *, attachments_only: bool,
               in_report: bool) -> None:
        maintype, _, subtype = part.mime.content_type.partition("/")
        if maintype == "multipart":
            self._visit_multipart(part, subtype, found, attachments_only, in_report)
        elif part.enclosed is not None and maintype == "message":
            self._visit_message(part, part.enclosed, found, in_report)
        else:
            self._visit_leaf(part, found, attachments_only, in_report)

    def _visit_multipart(self, part: Part, subtype: str, found: Collected,
                         attachments_only: bool, in_report: bool) -> None:
        children = part.children
        if subtype == "alternative" and not attachments_only:
            branches = []
            for child in children:
                branch = Collected()
                self._visit(child, branch, attachments_only=False, in_report=in_report)
                branches.append(branch)
            chosen = _choose_alternative(branches)
            for branch in branches:
                found.absorb(branch, body=branch is chosen)
            return
        root = 0
        if subtype == "related":
            start = extract_ids(part.mime.params.get("start", "").encode("utf-8", "replace"), 1)
            for index, child in enumerate(children):
                if start and child.mime.content_id == start[0]:
                    root = index
        for index, child in enumerate(children):
            only = (
                attachments_only
                or (subtype in ("related", "signed") and index != root)
                or subtype == "encrypted"
            )
            self._visit(child, found, attachments_only=only,
                        in_report=in_report or subtype == "report")

    def _visit_message(self, part: Part, enclosed: Headers, found: Collected,
                       in_report: bool) -> None:
        mime = part.mime
        if mime.content_type in ("message/rfc822", "message/global"):
            subject = enclosed.text("subject")
            content_type = "message/rfc822"
            default_name = f"{subject}.eml" if subject else "forwarded-message.eml"
        else:
            content_type = mime.content_type
            default_name = _DEFAULT_NAMES.get(content_type, "")
        found.attachments.append(AttachmentDraft(
            mime.filename, content_type, mime.content_id, _is_inline(mime), part.data,
            default_name))
        if in_report:
            found.report_original_ids.extend(_first_id(enclosed.first("message-id")))
            return
        if not part.children:
            return  # not a forwarded message: it stays an attachment only
        inner_found = self.collect(part.children[0])
        found.delivery_status = found.delivery_status or inner_found.delivery_status
        lines = [FORWARD_LINE]
        lines += [f"{label}: {enclosed.text(label.lower())}"
                  for label in _FORWARD_HEADERS if label.lower() in enclosed]
        inner_text = self.render(inner_found)
        if len(lines) == 1 and not inner_text:
            return
        lines += ["", inner_text]
        found.segments.append(
            Segment("forward", "\n".join(lines), inline=mime.disposition != "attachment")
        )

    def _visit_leaf(self, part: Part, found: Collected, attachments_only: bool,
                    in_report: bool) -> None:
        mime = part.mime
        if mime.content_type == "message/delivery-status":
            found.delivery_status = True
        if (
            mime.content_type in ("text/plain", "text/html")
            and not attachments_only
            and mime.disposition != "attachment"
            and not mime.filename
        ):
            decoded = decode_body(bytes(part.data), part.charset, f"{mime.content_type} part")
            if decoded.note:
                note(self.defects, decoded.note)
            text = decoded.text
            if mime.content_type == "text/html":
                found.has_html = True
                found.segments.append(Segment("html", text))
                return
            if mime.params.get("format", "").lower() == "flowed":
                text = unflow(text, delete_space=mime.params.get("delsp", "").lower() == "yes")
            found.segments.append(Segment("plain", text))
            return
        if in_report and mime.content_type == "text/rfc822-headers" and part.enclosed:
            found.report_original_ids.extend(_first_id(part.enclosed.first("message-id")))
        found.attachments.append(AttachmentDraft(
            mime.filename, mime.content_type, mime.content_id, _is_inline(mime), part.data,
            _DEFAULT_NAMES.get(mime.content_type, "")))


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


def _first_id(raw: bytes | None) -> list[str]:
    return extract_ids(raw, 1) if raw else []


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


def _is_inline(mime: MimeInfo) -> bool:
    return mime.disposition == "inline" or (mime.disposition == "" and mime.content_id is not None)
