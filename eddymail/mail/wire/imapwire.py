"""What travels over the IMAP wire besides the commands themselves.

Folder names in modified UTF-7 (RFC 3501 section 5.1.3), quoted strings, UID sets, and the
pieces eddymail needs out of imaplib's raw responses (UIDs, sizes, message bodies, the text
of a refusal). Pure functions, no connection: ``eddymail.mail.wire.imap`` uses them.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator
from typing import Any


def encode_folder_name(name: str) -> str:
    """``"Входящие/Отчёты & Co"`` -> ``"&BBIERQQ+BDQETwRJBDgENQ-/&BB4EQgRHBFEEQgRL- &- Co"``."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            packed = base64.b64encode("".join(pending).encode("utf-16-be")).decode("ascii")
            out.append("&" + packed.rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    return "".join(out)


def decode_folder_name(name: str | bytes) -> str:
    """Inverse of :func:`encode_folder_name`; a malformed name is returned unchanged."""
    if isinstance(name, bytes):
        # UTF8=ACCEPT servers may send raw UTF-8; a stray byte must not end the listing.
        name = name.decode("utf-8", "replace")
    out: list[str] = []
    index = 0
    while index < len(name):
        char = name[index]
        if char != "&":
            out.append(char)
            index += 1
            continue
        end = name.find("-", index + 1)
        if end == -1:
            return name
        chunk = name[index + 1 : end]
        if not chunk:
            out.append("&")
        else:
            packed = chunk.replace(",", "/")
            try:
                out.append(
                    base64.b64decode(packed + "=" * (-len(packed) % 4), validate=True).decode(
                        "utf-16-be"
                    )
                )
            except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
                return name
        index = end + 1
    return "".join(out)


# -- quoting, UID sets and responses ---------------------------------------------------


def quote(name: str) -> str:
    """``name`` as an IMAP quoted string."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote(value: bytes) -> bytes:
    """A quoted string from a response without its quotes and escapes; other values as is."""
    value = value.strip()
    if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
        return re.sub(rb"\\(.)", rb"\1", value[1:-1])
    return value


def response_text(typ: str, data: list[Any]) -> str:
    """The server's words in a failed response (``NO ...`` shown without the NO)."""
    last = data[-1] if data else b""
    text = last.decode("utf-8", "replace") if isinstance(last, bytes) else str(last or "")
    return text if typ == "NO" else f"{typ} {text}"


def last_int(values: list[Any]) -> int | None:
    """The last number among untagged response values (``EXISTS``, ``UIDVALIDITY``...)."""
    for value in reversed(values):
        if isinstance(value, bytes) and value.strip().isdigit():
            return int(value)
    return None


def compress_uids(uids: list[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1:3,7,9:10"`` (input sorted, unique)."""
    runs: list[list[int]] = []
    for uid in uids:
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return ",".join(str(first) if first == last else f"{first}:{last}" for first, last in runs)


def uid_sets(uids: Iterable[int], size: int) -> Iterator[tuple[str, set[int]]]:
    """``(uid set, the UIDs in it)`` for ``uids`` at most ``size`` at a time, sorted."""
    ordered = sorted({int(uid) for uid in uids if int(uid) > 0})
    for start in range(0, len(ordered), size):
        chunk = ordered[start : start + size]
        yield compress_uids(chunk), set(chunk)


def fetch_lines(data: list[Any]) -> Iterator[bytes]:
    """The response lines of a FETCH answer (literals left out)."""
    for item in data:
        if isinstance(item, tuple):
            yield item[0]
        elif isinstance(item, bytes):
            yield item


def uid_of(line: bytes) -> int | None:
    """The ``UID n`` item of a FETCH response line, if there is one."""
    match = re.search(rb"\bUID (\d+)", line)
    return int(match.group(1)) if match else None


def fetched_bodies(
    data: list[Any], wanted: set[int], section: bytes = rb"BODY\[\]"
) -> Iterator[tuple[int, bytes]]:
    """Pick ``(uid, body)`` out of imaplib's FETCH data.

    imaplib gives ``(header, literal)`` tuples followed by the rest of the line as bytes; the
    UID may sit before the literal (``1 (UID 5 BODY[...] {42}``, the section being empty) or
    after it (``UID 5)``).
    """
    pending: tuple[int | None, bytes] | None = None
    done: set[int] = set()
    for item in data:
        if isinstance(item, tuple) and re.search(section, item[0]):
            pending = (uid_of(item[0]), item[1])
            continue
        if pending is None:
            continue  # unsolicited FETCH (a flag change seen by another session)
        uid, body = pending
        if uid is None and isinstance(item, bytes):
            uid = uid_of(item)
        if uid in wanted and uid not in done:
            done.add(uid)
            yield uid, body
        pending = None
    if pending is not None and pending[0] is not None:
        uid, body = pending
        if uid in wanted and uid not in done:
            yield uid, body
