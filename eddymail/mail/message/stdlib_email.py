"""The one adapter between message parsing and the standard library's ``email`` package.

Why the ``email`` package at all: its feed parser (compat32 policy) is the proven reader of
broken and hostile MIME, and ``mimesplit`` must cut regular mail exactly as it does. What is
used, all of it documented API: ``BytesFeedParser`` fed in chunks, and of the compat32
``Message`` it builds ``raw_items()``, ``defects``, ``preamble``, ``epilogue``,
``get_default_type()``, ``get_content_type()``, ``get_boundary()``, ``is_multipart()`` and
``get_payload()``. The tree is turned into ``RawPart``s at once, so nothing else in eddymail
sees a ``Message``.

The one thing that needs care: a leaf's body exactly as received. The parser keeps it as
text with the 8-bit bytes as surrogates in a private field (``Message._payload``), and the
public ``get_payload()`` decodes those bytes with the declared charset and replacement
characters (lossy), or with ``decode=True`` undoes the transfer encoding its own strict way.
The documented rule that ``get_payload(decode=True)`` returns the payload "as-is", as bytes,
when there is no Content-Transfer-Encoding header gives the exact bytes: the header is
removed first (the ``Message`` is ours and thrown away right after). ``tests/
test_stdlib_email.py`` fails if a Python release changes any of this.
"""

from __future__ import annotations

import functools
from email.feedparser import BytesFeedParser
from email.message import Message

from eddymail.mail.message.parselimits import Deadline
from eddymail.mail.message.rawparts import RawPart

# Both use their documented default policy, compat32. (Not named through ``email.policy``:
# that module loads the header registry and its parser, which nothing here needs, and a
# mail server starts ``eddymail ingest`` once per message.)
_FEED_CHUNK = 256 * 1024


def feed_parse(raw: bytes, deadline: Deadline) -> RawPart:
    """The feed parser's tree of ``raw`` as ``RawPart``s.

    The bytes are fed in chunks with the time budget checked between them; compat32 keeps
    header values as received and accepts any garbage without raising.
    """
    deadline.check("reading the MIME structure")
    parser = BytesFeedParser()
    for start in range(0, len(raw), _FEED_CHUNK):
        parser.feed(raw[start : start + _FEED_CHUNK])
        deadline.check("reading the MIME structure")
    return _raw_part(parser.close())


def content_type_and_boundary(value: bytes | None, default_type: str) -> tuple[str, str | None]:
    """How the feed parser reads a Content-Type field (``None``: there is none).

    The lower-cased type (``default_type`` when absent, text/plain when invalid) and, for a
    multipart, its boundary (``None`` when it has none). ``Message.get_boundary()`` raises
    ``TypeError`` on some RFC 2231 mixtures, in the feed parser too, and so does this.
    """
    if value is None or len(value) <= _CACHED_VALUE_BYTES:
        return _cached_reading(value, default_type)
    return _reading(value, default_type)


def _reading(value: bytes | None, default_type: str) -> tuple[str, str | None]:
    message = Message()
    message.set_default_type(default_type)
    if value is not None:
        message.set_raw("Content-Type", value.decode("ascii", "surrogateescape"))
    content_type = message.get_content_type()
    if message.get_content_maintype() != "multipart":
        return content_type, None
    return content_type, message.get_boundary()


# The same few Content-Type values come back in every message; long ones are not kept.
_CACHED_VALUE_BYTES = 256
_cached_reading = functools.lru_cache(maxsize=256)(_reading)


def _raw_part(message: Message) -> RawPart:
    fields = tuple((name, _bytes(str(value))) for name, value in message.raw_items())
    defects = tuple(type(defect).__name__ for defect in message.defects)
    default_type = message.get_default_type()
    if message.is_multipart():
        children = tuple(_raw_part(child) for child in _parts(message))
        boundary = None
        if message.get_content_maintype() == "multipart":
            boundary = _bytes(message.get_boundary() or "")
        return RawPart(
            fields,
            children,
            boundary=boundary,
            preamble=_optional_bytes(message.preamble),
            epilogue=_optional_bytes(message.epilogue),
            default_type=default_type,
            defects=defects,
        )
    del message["content-transfer-encoding"]
    body = message.get_payload(decode=True)
    return RawPart(
        fields,
        body if isinstance(body, bytes) else b"",
        default_type=default_type,
        defects=defects,
    )


def _parts(message: Message) -> list[Message]:
    payload = message.get_payload()
    if not isinstance(payload, list):
        return []
    return [part for part in payload if isinstance(part, Message)]


def _bytes(text: str) -> bytes:
    """The bytes behind text the parser decoded as ASCII with surrogate escapes."""
    return text.encode("utf-8", "surrogateescape")


def _optional_bytes(text: str | None) -> bytes | None:
    return None if text is None else _bytes(text)
