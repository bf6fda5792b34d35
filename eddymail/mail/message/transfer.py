"""Undoing a Content-Transfer-Encoding leniently: base64 with junk, quoted-printable, uuencode.

Mail in the wild has base64 with missing padding, padding after every line or stray
characters, and transfer encodings no standard names. Nothing here raises: what cannot be
decoded is kept as sent, with a note saying so.
"""

from __future__ import annotations

import binascii
import re

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]")
_PADDING = re.compile(rb"=+")


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
