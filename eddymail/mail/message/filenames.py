"""Attachment names: a safe display name from whatever name a sender chose.

A sender's name can be ``../../x``, ``C:\\x``, ``/etc/passwd``, ``CON``, 5000 characters
long or full of control and bidi characters (``invoice\u202efdp.exe`` shows as
``invoiceexe.pdf``). ``safe_filename`` gives a name fit for display and, should another
module ever want one, for a file inside a directory it controls. This module itself never
uses a name as a path.
"""

from __future__ import annotations

import re
import unicodedata

from eddymail.mail.message.headervalues import replace_unstorable
from eddymail.patterns import LazyPattern

MAX_NAME_CHARS = 200
MAX_NAME_BYTES = 240
MAX_ORIGINAL_CHARS = 2000
_WINDOWS_RESERVED = LazyPattern(
    r"^(?:con|prn|aux|nul|com[0-9\u00b9\u00b2\u00b3]|lpt[0-9\u00b9\u00b2\u00b3]|conin\$|conout\$)$",
    re.IGNORECASE,
)
_FORBIDDEN = LazyPattern(r'[<>:"|?*]')
# Slashes that are not slashes: harmless here, but some Windows APIs "best-fit" them to real
# separators, and on screen "..∕..∕x" reads like a path.
_LOOKALIKE_SEPARATORS = LazyPattern("[\u2044\u2215\u29f8\u29f9\ufe68\uff0f\uff3c]")
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_DOTS = LazyPattern(r"\.{2,}")
_SPACES = LazyPattern(r"\s+")
_EXTENSION = LazyPattern(r"\.[A-Za-z0-9]{1,16}$")
# Types whose default name should still open with the right program.
_EXTENSIONS = {
    "text/plain": ".txt", "text/html": ".html", "text/csv": ".csv", "text/calendar": ".ics",
    "text/rfc822-headers": ".txt", "message/rfc822": ".eml", "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt", "application/pdf": ".pdf",
    "application/zip": ".zip", "application/json": ".json", "application/xml": ".xml",
    "application/msword": ".doc", "application/vnd.ms-excel": ".xls",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.oasis.opendocument.text": ".odt", "application/pgp-signature": ".asc",
    "application/pkcs7-signature": ".p7s", "application/x-pkcs7-signature": ".p7s",
    "image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp",
    "image/svg+xml": ".svg", "image/bmp": ".bmp", "image/tiff": ".tif", "audio/mpeg": ".mp3",
    "video/mp4": ".mp4",
}  # fmt: skip
# Format characters kept: zero-width (non-)joiners are part of Persian and Indic spelling.
_KEPT_FORMAT = {"\u200c", "\u200d"}


def clean_original(name: str) -> str:
    """The name as sent, for the record, capped at a sane length.

    Control characters are kept (shown escaped wherever it is displayed, like headers);
    only NUL and lone surrogates, which a database cannot store, become U+FFFD.
    """
    return replace_unstorable(name[:MAX_ORIGINAL_CHARS])


def extension_for(content_type: str) -> str:
    """A file extension for a MIME type (``.bin`` when unknown)."""
    return _EXTENSIONS.get(content_type.lower(), ".bin")


def safe_filename(name: str, index: int, content_type: str) -> str:
    """A display name without path parts, controls, ``..``, reserved names or excess length.

    The result is also fit to be one file name inside a folder the caller controls.

    ``index`` (1-based) numbers the fallback ``attachment-N.ext`` used when nothing usable
    is left of ``name``.
    """
    text = _SPACES.sub(" ", unicodedata.normalize("NFC", name))
    # A control or bidi character becomes "_", so the name shows that something was there
    # ("_]0;pwned_.txt", "invoice_fdp.exe") instead of reading as harmless text; other
    # invisible formatting (zero-width spaces, soft hyphens) is dropped.
    text = "".join(
        "_" if category == "Cc" or char in _BIDI else char
        for char in text
        if (category := unicodedata.category(char)) != "Cf" or char in _KEPT_FORMAT
        or char in _BIDI
    )
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = _FORBIDDEN.sub("_", _LOOKALIKE_SEPARATORS.sub("_", text))
    text = _DOTS.sub(".", text).strip(" .")
    stem = text.split(".", 1)[0].strip()
    if _WINDOWS_RESERVED.match(stem):
        text = "_" + text
    text = _shorten(text)
    if not text.strip(" ._"):
        return f"attachment-{index}{extension_for(content_type)}"
    return text


def _shorten(text: str) -> str:
    if len(text) <= MAX_NAME_CHARS and len(text.encode("utf-8")) <= MAX_NAME_BYTES:
        return text
    match = _EXTENSION.search(text)
    extension = match.group(0) if match else ""
    stem = text[: len(text) - len(extension)]
    stem = stem[: MAX_NAME_CHARS - len(extension)]
    budget = MAX_NAME_BYTES - len(extension.encode("utf-8"))
    while len(stem.encode("utf-8")) > budget:
        stem = stem[: max(0, len(stem) - max(1, (len(stem.encode("utf-8")) - budget) // 4))]
    return stem.rstrip(" .") + extension
