"""The part tree: one walk over the split message builds it, decoded, within the limits.

``build_tree`` visits every part once, in order: it counts parts and nesting against
``ParseLimits`` and checks the deadline as it goes, turns the parser's defects into notes,
decodes each part's MIME headers (type, parameters, disposition, filename, Content-ID),
undoes its transfer encoding, finds the charset its text declares, indexes the header fields
of every message (the top one and any it encloses) and repairs what can be repaired (a
multipart without boundary, a base64-encoded message/rfc822). Everything after (body,
attachments, classification, addresses) reads the resulting ``Part`` tree only.

Raw 8-bit bytes in headers are read with the charset of the message's first text part (its
"hint", see ``charsets.decode_header_bytes``); it is looked up only when such bytes turn up.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from eddymail.errors import MessageParseError
from eddymail.mail.message.charsets import Hint, lookup_charset, resolve_hint
from eddymail.mail.message.headervalues import decode_header, extract_ids, parse_parameters
from eddymail.mail.message.mimesplit import split
from eddymail.mail.message.parselimits import Deadline, ParseLimits, precheck
from eddymail.mail.message.rawparts import RawPart, first_field, serialize
from eddymail.mail.message.transfer import decode_transfer
from eddymail.patterns import LazyPattern

_META_CHARSET = LazyPattern(
    rb"<meta[^>]{0,200}?charset\s*=\s*[\"']?\s*([A-Za-z0-9_.:-]{1,40})", re.I
)
# A delimiter line in the body of a multipart that lost its boundary parameter. (The blanks
# excluded are those Python's str regular expressions count as whitespace in ASCII.)
_GUESSED_BOUNDARY = LazyPattern(rb'^--([^ \t\n\r\f\v\x1c-\x1f"]{1,200}?)[ \t]*\r?$', re.MULTILINE)
_HINT_PARTS = 50
_PARSER_DEFECTS: dict[str, str | None] = {
    "CloseBoundaryNotFoundDefect": "a multipart has no closing boundary; it was read to the end",
    "StartBoundaryNotFoundDefect": "a multipart never uses its boundary; it was read as text",
    # A multipart without boundary: the repair in the walk notes what it did instead.
    "NoBoundaryInMultipartDefect": None,
    "MultipartInvariantViolationDefect": None,
    "MissingHeaderBodySeparatorDefect": "a header block does not end with an empty line",
    "FirstHeaderLineIsContinuationDefect": "a header block starts with a continuation line",
    "MisplacedEnvelopeHeaderDefect": "a 'From ' envelope line appears among the headers",
    "InvalidMultipartContentTransferEncodingDefect": "a multipart declares a transfer encoding",
    "InvalidHeaderDefect": "a header line has no name",
}


# eq/repr off: never compared or printed, and each generated method is compiled at import
# (every start-up of ``ingest``).
@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Headers:
    """Header fields by lower-case name, values as received (folded, bytes), in order.

    ``hint`` is the charset raw 8-bit bytes in them are read with.
    """

    by_name: Mapping[str, tuple[bytes, ...]]
    hint: Hint = None

    @classmethod
    def index(cls, fields: Iterable[tuple[str, bytes]], hint: Hint) -> Headers:
        """Index ``(name, value)`` pairs."""
        by_name: dict[str, list[bytes]] = {}
        for name, value in fields:
            by_name.setdefault(name.lower(), []).append(value)
        return cls({name: tuple(values) for name, values in by_name.items()}, hint)

    def __contains__(self, name: str) -> bool:
        return name in self.by_name

    def first(self, name: str) -> bytes | None:
        """The first value of field ``name`` (lower case), or None."""
        values = self.by_name.get(name)
        return values[0] if values else None

    def all(self, name: str) -> tuple[bytes, ...]:
        """Every value of field ``name`` (lower case), in order."""
        return self.by_name.get(name, ())

    def text(self, name: str) -> str:
        """Field ``name`` decoded for display (one line; "" when absent)."""
        return decode_header(self.first(name) or b"", self.hint)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class MimeInfo:
    """What a part's MIME headers say, decoded: the type (lower case, the default when
    missing or invalid), its parameters, the disposition, the file name and Content-ID."""

    content_type: str
    params: Mapping[str, str]
    disposition: str
    filename: str
    content_id: str | None


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Part:
    """One part of a message, decoded; the top one stands for the message itself.

    ``mime`` is how the part is read, ``declared`` what its own header says: they differ
    only for a multipart without a usable boundary (split at a boundary found in its body,
    or read as text/plain). ``headers`` are the part's own fields (of the top part: the
    message's). ``data`` is a leaf's body with its transfer encoding undone, or the whole
    message a message/* part encloses, as bytes (a leaf with no encoding to undo: a view of
    the message's bytes). ``charset`` is the one its text declares
    (for HTML without one, a ``<meta>`` charset). ``children`` are a multipart's parts, or
    the message enclosed by a message/rfc822 part when it is read as part of the body (not
    inside a report). ``enclosed`` are the header fields of the message a message/* part
    (or a report's text/rfc822-headers part) holds.
    """

    mime: MimeInfo
    declared: MimeInfo
    headers: Headers
    data: bytes | memoryview = b""
    charset: str | None = None
    children: tuple[Part, ...] = ()
    enclosed: Headers | None = None


def build_tree(raw: RawPart, limits: ParseLimits, deadline: Deadline, defects: list[str],
               linesep: bytes) -> Part:
    """Walk the split message once into a ``Part`` tree; notes go to ``defects``.

    Raises ``MessageParseError`` when the message has more parts or deeper nesting than
    ``limits`` allow, or the deadline passes. ``linesep`` is the line end used to write an
    enclosed message out again.
    """
    return _Walk(limits, deadline, defects, linesep).part(raw, 0, _LazyHint(raw, None), False)


def note(defects: list[str], defect: str) -> None:
    """Add a note once; a hundred are enough to tell what happened."""
    if defect not in defects and len(defects) < 100:
        defects.append(defect)


class _Walk:
    def __init__(self, limits: ParseLimits, deadline: Deadline, defects: list[str],
                 linesep: bytes) -> None:
        self.limits = limits
        self.deadline = deadline
        self.defects = defects
        self.linesep = linesep
        self.parts = 0
        # Levels of forwarded messages the walk is in: only their text is read from their
        # parts (their files are in the forwarded message's own bytes, stored as one .eml).
        self.forwarded = 0

    def part(self, raw: RawPart, depth: int, hint: Hint, in_report: bool) -> Part:
        """Build the ``Part`` of ``raw`` and everything in it."""
        self._count(depth)
        for name in raw.defects:
            sentence = _PARSER_DEFECTS.get(name, f"the parser noted {name}")
            if sentence:
                note(self.defects, sentence)
        headers = Headers.index(raw.fields, hint)
        mime, encoding = _mime_info(headers, raw.default_type)
        maintype, _, subtype = mime.content_type.partition("/")
        payload = raw.payload
        if maintype == "multipart":
            if isinstance(payload, tuple):
                in_report = in_report or subtype == "report"
                children = tuple(self.part(child, depth + 1, hint, in_report) for child in payload)
                return Part(mime, mime, headers, children=children)
            return self._without_boundary(payload, mime, encoding, headers, depth, hint, in_report)
        if (maintype == "message" and isinstance(payload, tuple) and payload
                and mime.content_type != "message/delivery-status"):
            return self._message(payload[0], mime, encoding, headers, depth, hint, in_report)
        return self._leaf(payload, mime, mime, encoding, headers, in_report)

    def _count(self, depth: int) -> None:
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

    def _without_boundary(self, payload: bytes | memoryview, mime: MimeInfo, encoding: str,
                          headers: Headers, depth: int, hint: Hint, in_report: bool) -> Part:
        """A multipart without a usable boundary: guess it from the body, else read as text."""
        guess = _GUESSED_BOUNDARY.search(payload)
        if guess is not None and "boundary" not in mime.params:
            boundary = guess.group(1).removesuffix(b"--")
            rebuilt = (b"Content-Type: " + mime.content_type.encode("utf-8", "surrogateescape")
                       + b'; boundary="' + boundary + b'"\r\n\r\n' + payload)
            self._precheck(rebuilt, depth)
            shown = boundary.decode("ascii", "surrogateescape")
            note(self.defects, f"{mime.content_type} part has no boundary parameter; "
                               f"used {shown!r} found in its body")
            repaired = split(rebuilt, self.deadline)
            self.parts -= 1  # the same part again, now with its parts
            part = self.part(repaired, depth, hint, in_report)
            return dataclasses.replace(part, declared=mime, headers=headers)
        note(self.defects, f"{mime.content_type} part has no usable boundary; read as plain text")
        as_text = dataclasses.replace(mime, content_type="text/plain")
        return self._leaf(payload, as_text, mime, encoding, headers, in_report)

    def _message(self, inner: RawPart, mime: MimeInfo, encoding: str, headers: Headers,
                 depth: int, hint: Hint, in_report: bool) -> Part:
        """A message/* part: the message it encloses, its fields, and (forwarded) its parts."""
        if encoding in ("base64", "quoted-printable"):
            # Not allowed for message/* (RFC 2046 5.2.1) but sent anyway: decode and reparse.
            note(self.defects, f"{mime.content_type} part is {encoding}-encoded; decoded it")
            data = bytes(self._decode_transfer(serialize(inner, self.linesep), encoding))
            self._precheck(data, depth)
            inner = split(data, self.deadline)
        inner_hint = _LazyHint(inner, hint)
        children: tuple[Part, ...] = ()
        if not in_report and mime.content_type in ("message/rfc822", "message/global"):
            self.forwarded += 1
            try:
                children = (self.part(inner, depth + 1, inner_hint, False),)
            finally:
                self.forwarded -= 1
        data = b"" if self.forwarded else serialize(inner, self.linesep)
        return Part(mime, mime, headers, data=data, children=children,
                    enclosed=Headers.index(inner.fields, inner_hint))

    def _leaf(self, payload: bytes | memoryview | tuple[RawPart, ...], mime: MimeInfo,
              declared: MimeInfo, encoding: str, headers: Headers, in_report: bool) -> Part:
        data: bytes | memoryview
        if isinstance(payload, tuple):
            # message/delivery-status: blocks of fields, kept as they were sent.
            data = b"".join(serialize(block, self.linesep) for block in payload)
        elif self.forwarded and not _may_be_text(mime):
            data = b""  # a file of a forwarded message: nobody reads it on its own
        else:
            data = self._decode_transfer(payload, encoding)
        charset = mime.params.get("charset")
        if charset is None and mime.content_type == "text/html":
            meta = _META_CHARSET.search(data[:8192])
            charset = meta.group(1).decode("ascii") if meta else None
        enclosed = None
        if in_report and mime.content_type == "text/rfc822-headers":
            enclosed = Headers.index(split(bytes(data), self.deadline).fields, headers.hint)
        return Part(mime, declared, headers, data=data, charset=charset, enclosed=enclosed)

    def _precheck(self, data: bytes, depth: int) -> None:
        """The cheap limits on bytes a repair made, with the nesting already used."""
        limits = dataclasses.replace(self.limits, max_depth=max(0, self.limits.max_depth - depth))
        precheck(data, limits)

    def _decode_transfer(self, data: bytes | memoryview, encoding: str) -> bytes | memoryview:
        decoded, problem = decode_transfer(data, encoding)
        if problem:
            note(self.defects, problem)
        return decoded


def _may_be_text(mime: MimeInfo) -> bool:
    """Whether the body may show this leaf (``body.BodyReader``'s rule for text parts)."""
    return (mime.content_type in ("text/plain", "text/html") and mime.disposition != "attachment"
            and not mime.filename)


def _mime_info(headers: Headers, default_type: str) -> tuple[MimeInfo, str]:
    """A part's ``MimeInfo`` and its Content-Transfer-Encoding (lower case, "" when none)."""
    hint = headers.hint
    raw_type = headers.first("content-type")
    content_type, params = parse_parameters(raw_type, hint) if raw_type else ("", {})
    if content_type.count("/") != 1 or " " in content_type:
        content_type = default_type
    raw_disposition = headers.first("content-disposition")
    disposition, disposition_params = (
        parse_parameters(raw_disposition, hint) if raw_disposition else ("", {})
    )
    filename = disposition_params.get("filename") or params.get("name") or ""
    raw_id = headers.first("content-id")
    ids = extract_ids(raw_id, 1) if raw_id else []
    raw_encoding = headers.first("content-transfer-encoding") or b""
    encoding = raw_encoding.decode("ascii", "replace").strip().strip('"').lower()
    info = MimeInfo(content_type, params, disposition, filename, ids[0] if ids else None)
    return info, encoding


class _LazyHint:
    """The hint of the message ``raw`` (its own ``charset_hint``, else ``fallback``'s),
    looked up when first needed, once."""

    __slots__ = ("_fallback", "_raw", "_value")

    def __init__(self, raw: RawPart, fallback: Hint) -> None:
        self._raw: RawPart | None = raw
        self._fallback = fallback
        self._value: str | None = None

    def __call__(self) -> str | None:
        if self._raw is not None:
            self._value = charset_hint(self._raw) or resolve_hint(self._fallback)
            self._raw = None
        return self._value


def charset_hint(raw: RawPart) -> str | None:
    """The charset the first text part declares: the best guess for raw 8-bit headers."""
    for count, part in enumerate(_in_order(raw)):
        if count >= _HINT_PARTS:
            break
        value = first_field(part.fields, "content-type")
        if value is None:
            continue
        content_type, params = parse_parameters(value)
        if content_type.startswith("text/") and lookup_charset(params.get("charset")):
            return params["charset"]
    return None


def _in_order(raw: RawPart) -> Iterator[RawPart]:
    """``raw`` and every part in it, depth first, as ``email.message.Message.walk``."""
    stack = [raw]
    while stack:
        part = stack.pop()
        yield part
        if isinstance(part.payload, tuple):
            stack.extend(reversed(part.payload))
