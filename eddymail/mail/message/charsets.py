"""Turning the bytes of a body or header into text, whatever charset label they came with.

Mail lies about its charset. A label may be missing, unknown to Python (``x-foo``), dangerous
(``unicode_escape`` would interpret backslashes) or simply wrong: Russian mail written in
windows-1251 or koi8-r but labelled ``us-ascii`` or ``utf-8`` is routine. The rules here:
a known label is trusted when the bytes decode under it; otherwise UTF-8 is tried, then a
guess (``charsetguess``), and UTF-8 with replacement characters when all else fails. Two
lies get special treatment: text that is UTF-8 but for a few broken sequences (a truncated
body, a header cut inside a character) stays UTF-8 with U+FFFD for the broken bytes, and
plain ASCII under a label that would garble it (UTF-16, EBCDIC) is read as ASCII.
Nothing here raises on bad input.
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Callable
from typing import NamedTuple

from eddymail.mail.message.charsetguess import (
    DETECTION_SAMPLE,
    guess_charset,
    mislabelled_cyrillic,
)

# The charset a message's body declares, or a function that finds it (called only when a
# header really holds raw 8-bit bytes that are not UTF-8, which most mail never does).
Hint = str | None | Callable[[], str | None]

# Labels seen in real mail that Python does not know, or knows as a narrower charset than the
# one senders actually use (WHATWG does the same: a latin-1 label means windows-1252).
_ALIASES = {
    "x-cp1251": "cp1251", "win-1251": "cp1251", "cp-1251": "cp1251", "win1251": "cp1251",
    "windows1251": "cp1251", "x-win1251": "cp1251", "koi8r": "koi8_r", "koi8": "koi8_r",
    "x-koi8-r": "koi8_r", "koi-8-r": "koi8_r", "koi8u": "koi8_u",
    "x-mac-cyrillic": "mac_cyrillic", "x-mac-roman": "mac_roman", "macintosh": "mac_roman",
    "iso-8859-1": "cp1252", "iso8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252",
    "l1": "cp1252", "x-cp1252": "cp1252", "ks_c_5601-1987": "cp949", "ks_c_5601": "cp949",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "csgb2312": "gb18030",
    "euc-cn": "gb18030", "shift_jis": "cp932", "x-sjis": "cp932", "sjis": "cp932",
    "iso-8859-8-i": "iso8859_8", "iso-8859-6-i": "iso8859_6", "iso-8859-8-e": "iso8859_8",
    "unicode-1-1-utf-7": "utf-7", "utf8": "utf-8",
}  # fmt: skip
# Labels that mean "I do not know": treated like a missing label, without a complaint.
_NO_CHARSET = {"", "unknown-8bit", "x-unknown", "unknown", "x-user-defined", "default", "8bit"}
# Codecs that are text encodings to Python but would interpret the bytes as escapes or code.
_FORBIDDEN_CODECS = {
    "unicode-escape", "raw-unicode-escape", "idna", "punycode", "undefined", "charmap", "mbcs",
    "oem", "cp65001",
}  # fmt: skip


class DecodedText(NamedTuple):
    """Text decoded from bytes, the Python codec that produced it, and what was repaired."""

    text: str
    charset: str
    note: str | None = None


def lookup_charset(label: str | None) -> str | None:
    """Return the Python codec name for a MIME charset label, or None when it is unusable.

    Unknown labels, non-text codecs (``base64``, ``rot13``) and escape-interpreting codecs
    are refused; a few common misspellings and supersets are mapped (``gb2312`` -> gb18030).
    """
    if label is None:
        return None
    name = label.strip().strip("\"'").strip().lower()
    if name in _NO_CHARSET or len(name) > 64:
        return None
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if info.name in _FORBIDDEN_CODECS or not _is_text_encoding(info.name):
        return None
    return info.name


@functools.lru_cache(maxsize=256)
def _is_text_encoding(codec: str) -> bool:
    """False for bytes-to-bytes or str-to-str codecs (base64, zlib, rot13).

    ``bytes.decode`` refuses them with a LookupError ("not a text encoding"): the public face
    of the flag ``codecs.CodecInfo`` keeps privately. (Empty input would skip the check.)
    """
    try:
        b"x".decode(codec)
    except LookupError:
        return False
    except (UnicodeDecodeError, ValueError):
        pass  # a text encoding that does not take a lone "x"
    return True


def is_unknown_label(label: str | None) -> bool:
    """True when a charset label was given but names nothing usable (``x-foo``)."""
    if label is None:
        return False
    return label.strip().strip("\"'").strip().lower() not in _NO_CHARSET and (
        lookup_charset(label) is None
    )


def decode_body(data: bytes, declared: str | None, what: str = "body") -> DecodedText:
    """Decode a body part: by its declared charset when the bytes agree, else by detection.

    ``what`` names the part in the repair note ("text/plain part").
    """
    if not data:
        return DecodedText("", mime_name(lookup_charset(declared) or "ascii"))
    bom = _decode_bom(data)
    if bom is not None:
        return bom
    codec = lookup_charset(declared)
    if codec is not None and declared is not None:
        try:
            if codec == "ascii" and not data.isascii():
                raise UnicodeDecodeError(codec, data, 0, 1, "8-bit bytes")
            if _ascii_mislabelled(data, codec):
                raise UnicodeDecodeError(codec, data, 0, 1, "ASCII text")
            if _is_single_byte(codec) and not data.isascii() and _is_utf8(data):
                # Any byte string decodes in a single-byte charset, so a wrong label never
                # fails; but Cyrillic or Latin text in one is practically never valid UTF-8.
                note = f"{what} was labelled charset {declared.strip()!r} but is UTF-8"
                return DecodedText(data.decode("utf-8"), "utf-8", note)
            cyrillic = mislabelled_cyrillic(data, codec)
            if cyrillic is not None:
                note = (f"{what} was labelled charset {declared.strip()!r} but is Cyrillic "
                        f"{mime_name(cyrillic)}")
                return DecodedText(data.decode(cyrillic), mime_name(cyrillic), note)
            return DecodedText(data.decode(codec), mime_name(codec))
        except UnicodeDecodeError:
            if codec == "utf-8":
                repaired = _mostly_utf8(data, labelled=True)
                if repaired is not None:
                    note = f"{what} has invalid UTF-8 sequences; shown as U+FFFD"
                    return DecodedText(repaired, "utf-8", note)
            detected = detect_and_decode(data)
            note = (
                f"{what} was labelled charset {declared.strip()!r} but its bytes are not; "
                f"decoded as {detected.charset}"
            )
            return DecodedText(detected.text, detected.charset, note)
    detected = detect_and_decode(data)
    if declared is None and detected.charset != "ascii":
        return DecodedText(
            detected.text, detected.charset, f"{what} has no charset; decoded as {detected.charset}"
        )
    if declared is not None and is_unknown_label(declared):
        note = (
            f"{what} has unknown charset {declared.strip()[:64]!r}; decoded as {detected.charset}"
        )
        return DecodedText(detected.text, detected.charset, note)
    return detected


def detect_and_decode(data: bytes) -> DecodedText:
    """Decode bytes whose charset is unknown: ASCII, UTF-8, Cyrillic, detector, UTF-8 lossy."""
    if data.isascii():
        return DecodedText(data.decode("ascii"), "ascii")
    try:
        return DecodedText(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        pass
    repaired = _mostly_utf8(data, labelled=False)
    if repaired is not None:
        return DecodedText(repaired, "utf-8")
    charset = guess_charset(data)
    if charset is None:
        return DecodedText(data.decode("utf-8", "replace"), "utf-8")
    return DecodedText(data.decode(charset, "replace"), mime_name(charset))


def mime_name(codec: str) -> str:
    """The name people know a Python codec by: ``cp1251`` -> ``windows-1251``."""
    try:
        name = codecs.lookup(codec).name
    except LookupError:
        return codec
    if name.startswith("cp125") and len(name) == 6:
        return "windows-" + name[2:]
    return name


def resolve_hint(hint: Hint) -> str | None:
    """The charset label a ``Hint`` stands for (calling it when it is a function)."""
    return hint() if callable(hint) else hint


def decode_header_bytes(data: bytes, hint: Hint = None) -> str:
    """Decode raw 8-bit bytes found in a header (not RFC 2047 encoded), never raising.

    ``hint`` is the charset the message's body declared: senders that put raw 8-bit text in
    headers nearly always use their body charset, which beats guessing on a dozen bytes.
    """
    if data.isascii():
        return data.decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Before the hint: a single-byte hint decodes anything, UTF-8 with one broken character
    # (a header cut in the middle of one) included.
    repaired = _mostly_utf8(data, labelled=False)
    if repaired is not None:
        return repaired
    codec = lookup_charset(resolve_hint(hint))
    if codec is not None and codec not in ("ascii", "utf-8"):
        try:
            return data.decode(codec)
        except UnicodeDecodeError:
            pass
    charset = guess_charset(data)
    return data.decode(charset or "utf-8", "replace")


def decode_declared(data: bytes, label: str | None, hint: Hint = None) -> str:
    """Decode bytes labelled ``label`` (an RFC 2047/2231 charset), never raising.

    An unknown label gives U+FFFD for its 8-bit bytes; a label meaning "unknown" (Python's
    own ``unknown-8bit``) is decoded like raw header bytes, with ``hint``.
    """
    codec = lookup_charset(label)
    if codec is None:
        if not is_unknown_label(label):
            return decode_header_bytes(data, hint)
        return data.decode("ascii") if data.isascii() else data.decode("utf-8", "replace")
    if _ascii_mislabelled(data, codec):
        return data.decode("ascii")
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        if codec == "utf-8":
            repaired = _mostly_utf8(data, labelled=True)
            if repaired is not None:
                return repaired
        if codec in ("ascii", "utf-8"):
            # A lying label on a header word: same repair as for bodies.
            return decode_header_bytes(data, hint)
        return data.decode(codec, "replace")


def _ascii_mislabelled(data: bytes, codec: str) -> bool:
    """True for plain ASCII text under a label that would turn it into something else.

    UTF-16 and UTF-32 (no real text in them is free of NUL bytes) and EBCDIC code pages read
    "Hello" as CJK or accented garbage; the sender's label is wrong, the text is ASCII.
    UTF-7 is excluded: its text is ASCII by design.
    """
    return (
        codec != "utf-7"
        and data.isascii()
        and b"\x00" not in data
        and not _is_ascii_compatible(codec)
    )


@functools.lru_cache(maxsize=64)
def _is_ascii_compatible(codec: str) -> bool:
    """True when printable ASCII bytes decode to themselves (most charsets, not UTF-16)."""
    sample = bytes(range(0x20, 0x7F)) + b"\t\r\n"
    try:
        return sample.decode(codec) == sample.decode("ascii")
    except UnicodeDecodeError:
        return False


def _mostly_utf8(data: bytes, *, labelled: bool) -> str | None:
    """UTF-8 with U+FFFD for its broken sequences, when the bytes are UTF-8 with a few errors.

    A truncated body or a header word cut in the middle of a character is still UTF-8; a
    detector would call the whole text cp932 or windows-1251 for one broken character.
    Text really written in a single-byte charset almost never forms valid multibyte
    sequences, so "at least as many valid sequences as broken ones" (twice as many without
    a UTF-8 label) tells the two apart. Judged on a sample, applied to all.
    """
    sample = data[:DETECTION_SAMPLE].decode("utf-8", "replace")
    replaced = sample.count("\ufffd") - data[:DETECTION_SAMPLE].count(b"\xef\xbf\xbd")
    valid = len(sample) - len(sample.encode("ascii", "ignore")) - sample.count("\ufffd")
    if valid == 0 or valid < (1 if labelled else 2) * replaced:
        return None
    return data.decode("utf-8", "replace")


@functools.lru_cache(maxsize=64)
def _is_single_byte(codec: str) -> bool:
    """True for charmap codecs (koi8-r, windows-1251, ...) where every byte is a character."""
    if codecs.lookup(codec).name.startswith("utf"):
        return False
    return len(bytes(range(0x80, 0x100)).decode(codec, "replace")) == 0x80


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _decode_bom(data: bytes) -> DecodedText | None:
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if data.startswith(bom):
            try:
                return DecodedText(data.decode(codec), codec.removesuffix("-sig"))
            except UnicodeDecodeError:
                return None
    return None
