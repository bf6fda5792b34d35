"""Builders of hostile messages, as raw bytes, for the adversarial tests.

Everything here is built by hand rather than with ``email.message``: the point is to send
bytes that a well-behaved library would refuse to write (lying charsets, broken MIME,
escape sequences in headers, bombs).
"""

from __future__ import annotations

import base64
import itertools
import sqlite3

_counter = itertools.count(1)

# Terminal attacks, each as it would appear in decoded text.
SCREEN_CLEAR = "\x1b[2J"
CURSOR_HOME = "\x1b[H"
CURSOR_UP = "\x1b[5A"
TITLE_SET = "\x1b]0;pwned\x07"
TITLE_REPORT = "\x1b[21t"
CLIPBOARD_WRITE = "\x1b]52;c;ZWNobyBwd25lZA==\x07"
HYPERLINK = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
C1_CSI = "\x9b2J"
BIDI = "\u202egpj.exe\u202c \u2066iso\u2069 \u2067x\u2068y\u2069"
ZERO_WIDTH = "a\u200bb\ufeffc"
MARKUP = "[bold]B[/bold] [/] [link=https://evil.example]x[/link]"

TERMINAL_ATTACKS = (
    SCREEN_CLEAR, CURSOR_HOME, CURSOR_UP, TITLE_SET, TITLE_REPORT, CLIPBOARD_WRITE, HYPERLINK,
    C1_CSI, BIDI, ZERO_WIDTH, MARKUP,
)  # fmt: skip
HOSTILE_TEXT = "Hi " + " ".join(TERMINAL_ATTACKS)


def encoded_word(text: str, charset: str = "utf-8") -> str:
    """``text`` as one RFC 2047 B-encoded word (so any character fits in a header)."""
    data = base64.b64encode(text.encode(charset)).decode("ascii")
    return f"=?{charset}?B?{data}?="


def message_id() -> str:
    """A fresh Message-ID."""
    return f"<hostile-{next(_counter)}@evil.example>"


def raw_mail(
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"Hello.\r\n",
    *,
    subject: str = "Hostile",
    sender: str = "Eve <eve@evil.example>",
    content_type: str | None = "text/plain; charset=utf-8",
    linesep: bytes = b"\r\n",
) -> bytes:
    """A message from header (name, value) pairs and a raw body; values must be ASCII-safe
    or already encoded, they are written exactly as given."""
    lines = [
        ("From", sender),
        ("To", "help@example.test"),
        ("Subject", subject),
        ("Date", "Fri, 27 Nov 2026 10:00:00 +0000"),
        ("Message-ID", message_id()),
        ("MIME-Version", "1.0"),
    ]
    if content_type is not None:
        lines.append(("Content-Type", content_type))
    lines += headers or []
    head = linesep.join(f"{name}: {value}".encode("utf-8", "surrogateescape")
                        for name, value in lines)
    return head + linesep + linesep + body


def nesting_bomb(depth: int = 1000) -> bytes:
    """``depth`` multiparts, each the only child of the one before."""
    parts = [raw_mail(content_type='multipart/mixed; boundary="b0"', body=b"")]
    for level in range(1, depth):
        parts.append(f'--b{level - 1}\r\nContent-Type: multipart/mixed; boundary="b{level}"'
                     "\r\n\r\n".encode())
    parts.append(f"--b{depth - 1}\r\nContent-Type: text/plain\r\n\r\nboom\r\n".encode())
    parts += [f"--b{level}--\r\n".encode() for level in reversed(range(depth))]
    return b"".join(parts)


def part_count_bomb(parts: int = 20_000) -> bytes:
    """One multipart with ``parts`` tiny text parts."""
    body = b"".join(b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(parts))
    return raw_mail(content_type='multipart/mixed; boundary="p"', body=body + b"--p--\r\n")


def huge_header(size: int = 2 * 1024 * 1024) -> bytes:
    """A header block of about ``size`` bytes: one X- field folded into 80-byte lines."""
    filler = "\r\n\t".join(["x" * 76] * (size // 79 + 1))
    return raw_mail([("X-Filler", filler)])


def recursive_from_headers() -> dict[str, str]:
    """From header values built to make a recursive or backtracking address parser spin.

    Each is over the header-field limit, so it must be refused before any parsing.
    """
    return {
        "unclosed_comments": "(" * 200_000,
        "commas": "," * 200_000 + " a@evil.example",
        "encoded_words": " ".join(["=?utf-8?q?=28?="] * 40_000) + " <a@evil.example>",
    }


def with_from(value: str) -> bytes:
    """A small message whose From header is exactly ``value`` (folded every 900 bytes)."""
    folded = "\r\n ".join(value[start : start + 900] for start in range(0, len(value), 900))
    return raw_mail(sender=folded)


def mixed(*parts: bytes, subject: str = "Hostile", sender: str = "Eve <eve@evil.example>",
          headers: list[tuple[str, str]] | None = None, subtype: str = "mixed") -> bytes:
    """A multipart message of ready-made ``parts`` (each its own headers, blank line, body)."""
    body = b"".join(b"--hostile-boundary\r\n" + part + b"\r\n" for part in parts)
    return raw_mail(
        headers,
        body + b"--hostile-boundary--\r\n",
        subject=subject,
        sender=sender,
        content_type=f'multipart/{subtype}; boundary="hostile-boundary"',
    )


def text_part(text: str, content_type: str = "text/plain; charset=utf-8") -> bytes:
    """An inline text part, 8-bit."""
    return (f"Content-Type: {content_type}\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            .encode() + text.encode("utf-8", "surrogateescape"))


def attachment_part(disposition: str, data: bytes,
                    content_type: str = "application/octet-stream") -> bytes:
    """An attachment whose Content-Disposition value is exactly ``disposition``."""
    return (
        f"Content-Type: {content_type}\r\nContent-Disposition: {disposition}\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n".encode()
        + base64.encodebytes(data).replace(b"\n", b"\r\n")
    )


def ingest(eddymail, folder, *raws: bytes) -> list[dict]:
    """Write each raw message to a file in ``folder`` and ingest them all in one run into
    the Support department; the ``messages`` outcomes, in order."""
    paths = []
    for number, raw in enumerate(raws):
        path = folder / f"message-{next(_counter)}-{number}.eml"
        path.write_bytes(raw)
        paths.append(str(path))
    return eddymail.json("ingest", "--department", "Support", *paths)["messages"]


def stored_raw_messages(database_path) -> dict[int, bytes]:
    """Ledger entry id -> the raw bytes the database keeps for it."""
    with sqlite3.connect(database_path) as connection:
        rows = connection.execute(
            "SELECT ledger_entry.id, raw_message.data FROM ledger_entry "
            "JOIN raw_message ON ledger_entry.raw_id = raw_message.id"
        ).fetchall()
    return {entry_id: bytes(data) for entry_id, data in rows}
