"""Undoing a Content-Transfer-Encoding leniently: base64 with junk, quoted-printable, uuencode.

Mail in the wild has base64 with missing padding, padding after every line or stray
characters, and transfer encodings no standard names. Nothing here raises: what cannot be
decoded is kept as sent, with a note saying so.
"""

from __future__ import annotations

import binascii

from eddymail.patterns import LazyPattern

_NOT_BASE64 = LazyPattern(rb"[^A-Za-z0-9+/]")
_PADDING = LazyPattern(rb"=+")


def decode_transfer(data: bytes | memoryview, encoding: str
                    ) -> tuple[bytes | memoryview, str | None]:
    """Undo a Content-Transfer-Encoding leniently: ``(bytes, note of a repair or None)``.

    ``data`` may be a view of the message's bytes: base64 and quoted-printable are decoded
    from it without a copy of the encoded text, and a part with nothing to undo (7bit,
    8bit, binary, an unknown encoding) is given back as it came, a view still.
    """
    if encoding == "base64":
        return _decode_base64(memoryview(data))
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data), None
    if encoding in ("x-uuencode", "uuencode", "x-uue"):
        return _uudecode(bytes(data)), None
    if encoding not in ("", "7bit", "8bit", "binary"):
        return data, f"unknown transfer encoding {encoding[:40]!r}; part kept as sent"
    return data, None


_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


#: Bytes looked at in one go when checking base64: the check never copies a whole part.
WINDOW = 1 << 20
_NON_ALPHABET = bytes(sorted(set(range(256)) - set(_BASE64_ALPHABET)))


def _decode_base64(data: memoryview) -> tuple[bytes, str | None]:
    """Base64 with junk characters, missing padding or padding after every line.

    Each stretch up to a padding run is decoded on its own: some mailers encode line by line,
    and a decoder that stops at the first "=" would keep only the first line.
    """
    # The common cases, padding only at the very end, with or without junk characters
    # (line breaks, stray "!" or spaces) among the others, decode in C in one call: binascii
    # skips every character outside the alphabet, so no cleaned copy of a part of tens of
    # megabytes is ever made. The check reads the part in windows of ``WINDOW`` bytes.
    if _padded_only_at_the_end(data):
        return binascii.a2b_base64(data), None
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


def _padded_only_at_the_end(data: memoryview) -> bool:
    """True when every "=" follows the last base64 character and completes its quantum."""
    letters = 0
    first_pad = -1
    for start in range(0, len(data), WINDOW):
        window = bytes(data[start:start + WINDOW])
        pad = window.find(b"=")
        letters += len((window if pad < 0 else window[:pad]).translate(None, _NON_ALPHABET))
        if pad >= 0:
            first_pad = start + pad
            break
    if first_pad < 0:
        return letters % 4 == 0
    tail = bytes(data[first_pad:first_pad + 64])  # padding and line ends, nothing more
    if len(data) - first_pad > 64 or tail.translate(None, _NON_ALPHABET):
        return False  # letters after a padding run: stretches decoded one by one
    # A last quantum of 2 or 3 letters needs its padding; one of 1 letter is truncated.
    remainder = letters % 4
    return remainder == 0 or (remainder != 1 and tail.count(b"=") >= 4 - remainder)


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
