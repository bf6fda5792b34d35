"""A message cut into its MIME parts, every byte as received, and written out again.

``mimesplit.split`` produces the ``RawPart`` tree (with its own fast splitter or, for odd
mail, the standard library's feed parser); ``parttree`` walks it once. Nothing is decoded
here.
"""

from __future__ import annotations

from dataclasses import dataclass


# eq/repr off: never compared or printed, and each generated method is compiled at import
# (every start-up of ``ingest``).
@dataclass(frozen=True, slots=True, eq=False, repr=False)
class RawPart:
    """One entity as the feed parser cuts it: its header fields, then a body or parts.

    ``fields`` are ``(name, value)`` in order, the value as received with its folding and
    without the final line end. ``payload`` is the body of a leaf (also of a multipart with
    no usable boundary) as bytes or a read-only view of the message's bytes, or the parts:
    those of a multipart, the one message a message/* part encloses, the field blocks of a
    message/delivery-status. A multipart's ``boundary``, ``preamble`` and ``epilogue`` are
    kept to write it out again (``None`` when absent). ``default_type`` is the type of a
    part without Content-Type (message/rfc822 in a digest), ``defects`` the names of what
    the feed parser found wrong.
    """

    fields: tuple[tuple[str, bytes], ...]
    payload: bytes | memoryview | tuple[RawPart, ...]
    boundary: bytes | None = None
    preamble: bytes | None = None
    epilogue: bytes | None = None
    default_type: str = "text/plain"
    defects: tuple[str, ...] = ()


def first_field(fields: tuple[tuple[str, bytes], ...], name: str) -> bytes | None:
    """The value of the first field called ``name`` (lower case), or None."""
    for field_name, value in fields:
        if field_name.lower() == name:
            return value
    return None


def serialize(part: RawPart, linesep: bytes) -> bytes:
    """A (sub)message as bytes again: headers and leaf bodies exactly as received.

    Only the line breaks the parser consumed (after headers, around boundaries) are written
    with ``linesep``; ``email.generator`` would also refold or re-encode headers. The pieces
    are joined once: a forwarded message of tens of megabytes is copied once, not once per
    level it is nested in and again at the end.
    """
    pieces: list[bytes | memoryview] = []
    _collect(part, linesep, pieces)
    return b"".join(pieces)


def _collect(part: RawPart, linesep: bytes, out: list[bytes | memoryview]) -> None:
    for name, value in part.fields:
        out += (name.encode("utf-8", "surrogateescape"), b": ", value, linesep)
    out.append(linesep)
    payload = part.payload
    if isinstance(payload, tuple) and part.boundary is not None:
        if part.preamble is not None:
            out += (part.preamble, linesep)
        for child in payload:
            out += (b"--", part.boundary, linesep)
            _collect(child, linesep, out)
            out.append(linesep)
        out += (b"--", part.boundary, b"--", linesep)
        if part.epilogue:
            out.append(part.epilogue)
    elif isinstance(payload, tuple):
        for child in payload:
            _collect(child, linesep, out)
    else:
        out.append(payload)
