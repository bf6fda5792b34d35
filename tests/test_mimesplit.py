"""Differential test: ``mimesplit.split_message`` cuts exactly what the stdlib feed parser cuts.

``eddymail.mail.message.mimesplit`` replaces ``BytesFeedParser(policy=compat32)`` on the ingest path
because the feed parser is slow on large mail. Everything downstream (``parttree``, the defect
report) reads the ``RawPart`` tree, so the contract is equality, not "close enough": for any
input, ``split_message`` either returns ``None`` (and ``split`` falls back to the feed parser)
or a tree equal in every field to the one ``stdlib_email.feed_parse`` makes of the feed
parser's (``tests/test_stdlib_email.py`` checks that conversion keeps every byte).

The random corpus is seeded, so a failure names the call that rebuilds the case
(``generate(16)``); the failing bytes are also shrunk, by lines and then by bytes, and printed.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eddymail.mail.message.mimesplit import split_message
from eddymail.mail.message.parselimits import Deadline
from eddymail.mail.message.rawparts import RawPart
from eddymail.mail.message.stdlib_email import feed_parse

CASES = 3600
MUTATED = 1500
MIN_FAST_SHARE = 0.30
MIN_CLEAN_FAST_SHARE = 0.95
DATA = Path(__file__).parent / "data"
SAMPLES = Path(__file__).parents[1] / "eddymail" / "samples"


# --- the comparison -------------------------------------------------------------------


def reference(raw: bytes) -> RawPart:
    """What the feed parser builds (all bytes fed, then ``close()``), as ``RawPart``s."""
    return feed_parse(raw, Deadline(3600))


def tree(part: RawPart) -> dict[str, Any]:
    """Every field of a ``RawPart``, nested, so two trees compare with ``==`` (a payload
    the splitter gives as a view of the message compares as its bytes)."""
    return {item.name: _plain(getattr(part, item.name)) for item in dataclasses.fields(part)}


def _plain(value: Any) -> Any:
    if isinstance(value, RawPart):
        return tree(value)
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    return bytes(value) if isinstance(value, memoryview) else value


def first_difference(fast: Any, ref: Any, path: str = "root") -> str | None:
    """Where two trees first differ, as ``path: fast != reference``; None if equal."""
    if isinstance(fast, dict) and isinstance(ref, dict) and fast.keys() == ref.keys():
        for key in fast:
            found = first_difference(fast[key], ref[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(fast, (list, tuple)) and isinstance(ref, (list, tuple)) and len(fast) == len(ref):
        for index, (a, b) in enumerate(zip(fast, ref, strict=True)):
            found = first_difference(a, b, f"{path}[{index}]")
            if found:
                return found
        return None
    if fast == ref:
        return None
    return f"{path}: fast={_trim(repr(fast), 300)} reference={_trim(repr(ref), 300)}"


def mismatch(raw: bytes) -> str | None:
    """Why ``split_message(raw)`` breaks the contract, or None when it keeps it.

    Declining is always allowed. Raising is allowed only where the feed parser raises the
    same exception (``Message.get_boundary()`` fails alike in both on some RFC 2231
    parameters), so the caller sees the same error either way.
    """
    try:
        fast = split_message(raw)
    except Exception as exc:
        try:
            reference(raw)
        except Exception as ref_exc:
            if type(ref_exc) is type(exc) and ref_exc.args == exc.args:
                return None
        return f"split_message raised {exc!r}"
    if fast is None:
        return None
    if not isinstance(fast, RawPart):
        return f"split_message returned {type(fast).__name__}, not a RawPart"
    try:
        ref = reference(raw)
    except Exception as exc:
        return f"split_message returned a tree where the feed parser raises {exc!r}"
    return first_difference(tree(fast), tree(ref))


def shrink(raw: bytes, failing: Callable[[bytes], bool], budget: int = 4000) -> bytes:
    """The smallest input (by whole lines, then by bytes) that still fails."""
    lines = raw.splitlines(keepends=True)
    chunk = max(1, len(lines) // 2)
    while chunk >= 1 and budget > 0:
        start, shrunk = 0, False
        while start < len(lines) and budget > 0:
            candidate = lines[:start] + lines[start + chunk :]
            budget -= 1
            if failing(b"".join(candidate)):
                lines, shrunk = candidate, True
            else:
                start += chunk
        if not shrunk:
            chunk //= 2
    data = b"".join(lines)
    index = 0
    while index < len(data) and budget > 0:
        candidate = data[:index] + data[index + 1 :]
        budget -= 1
        if failing(candidate):
            data = candidate
        else:
            index += 1
    return data


def report(raw: bytes, why: str, label: str) -> str:
    """A failure message someone can paste into a REPL: the case, its shrunk bytes, the diff."""
    small = shrink(raw, lambda data: mismatch(data) is not None)
    return (
        f"{label}: {why}\n"
        f"  input ({len(raw)} bytes): {_trim(repr(raw), 600)}\n"
        f"  shrunk: {_trim(repr(small), 600)}\n"
        f"  shrunk difference: {mismatch(small)}"
    )


def _trim(text: str, limit: int) -> str:
    """``text`` cut in the middle if it is longer than ``limit``."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} ...[{len(text) - limit} chars]... {text[-half:]}"


def assert_exact(raw: bytes, label: str = "case") -> None:
    """The core assertion: declined, or equal to the feed parser."""
    why = mismatch(raw)
    assert why is None, report(raw, why, label)


# --- the random corpus ----------------------------------------------------------------

_BCHARS = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ0123456789'()+_,-./:=?"
_TSPECIALS = set("()<>@,;:\\\"/[]?= ")
_WORDS = (
    b"hello", b"printer", b"ticket", b"jams", b"again", b"the", b"second", b"floor",
    b"\xd0\xbf\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82", b"caf\xc3\xa9", b"na\xefve",
    b"M\xfcller", b"=?utf-8?q?caf=C3=A9?=", b"<b>bold</b>",
)
# Lines the feed parser keeps whole (it splits on \r, \n and \r\n only), some of which
# str.splitlines() or a careless prefix test would split or take for a delimiter.
_ODD_BODY_LINES = (
    b"page\x0cbreak", b"\x0c", b"vertical\x0btab", b"fs\x1cgs\x1drs\x1e", b"nel\x85byte",
    b"ls\xe2\x80\xa8ps\xe2\x80\xa9", b"nul\x00byte", b">From the start", b"From here on",
    b"--", b"----", b"-- ", b"--\x0c", b"Subject: not a header", b"\tindented", b"  ",
    b"trailing  \t", b"x" * 998, b"\xff\xfe\x00binary", b"=\x0b=",
)
_BINARY = bytes(byte for byte in range(256) if byte not in b"\r\n")
_SUBJECTS = (
    b"Printer jams", b"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xbd\xd1\x82\xd0\xb5\xd1\x80 UTF-8 raw",
    b"=?utf-8?b?0J/RgNC40L3RgtC10YA=?=", b"Re: Fwd: [#41] caf\xc3\xa9", b"", b"  spaced  ",
)
_FILENAMES = (
    b'"report.pdf"', b'"\xd0\xbe\xd1\x82\xd1\x87\xd1\x91\xd1\x82.pdf"', b"plain.txt",
    b"\"quoted \\\"name\\\".txt\"",
)


def boundary_pattern(boundary: str) -> re.Pattern[str]:
    """The feed parser's delimiter regex for ``boundary`` (used to keep lookalikes fake)."""
    return re.compile(
        "(?P<sep>"
        + re.escape("--" + boundary)
        + r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
    )


class Generator:
    """One random MIME message: a tree of entities rendered as lines, then line endings.

    ``chaos`` is the chance of each odd choice (defects, decline triggers); a case whose
    odd choices never fired is ``clean`` - well formed, the splitter should take it.
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.chaos = 0.0 if self.rng.random() < 0.55 else self.rng.choice((0.03, 0.1, 0.3))
        self.odd_used = False
        self.used_boundaries: list[str] = []
        self.max_depth = self.rng.randint(1, 4)
        if self.odd():
            self.max_depth = self.rng.randint(6, 12)

    def odd(self) -> bool:
        """Whether to make an odd choice here (and remember that one was made)."""
        if self.rng.random() < self.chaos:
            self.odd_used = True
            return True
        return False

    # -- whole message --

    def message(self) -> bytes:
        """The bytes of one case."""
        r = self.rng
        if self.odd():
            shape = r.choice((b"", b"\n", b"\r\n", b"hello", b"Subject: only headers",
                              b"Subject: only headers\n", b"Subject: x\r\nTo: y\r\n",
                              b"From someone", b"\r", b" continued\n\nbody"))
            if shape:
                return shape
        lines = self.entity(0, (), top=True)
        if self.odd():
            lines.insert(0, b"From sender@example.org Mon Jan  1 00:00:00 2024")
        mode = r.choice(("lf", "lf", "crlf", "crlf", "mixed"))
        if self.odd():
            mode = "cr"
        endings = {"lf": [b"\n"], "crlf": [b"\r\n"], "mixed": [b"\n", b"\r\n"], "cr": [b"\r"]}
        out = [line + r.choice(endings[mode]) for line in lines]
        if self.odd():
            index = r.randrange(len(out))
            out[index] = r.choice((
                out[index].rstrip(b"\r\n") + b"\r",
                out[index].rstrip(b"\r\n") + b"\r\r\n",
                out[index][: len(out[index]) // 2] + b"\r" + out[index][len(out[index]) // 2 :],
            ))
        if lines[-1] and r.random() < 0.35:
            # No final newline (not after a blank line: headers must end in a blank line).
            out[-1] = out[-1].rstrip(b"\r\n")
        return b"".join(out)

    # -- entities --

    def entity(
        self, depth: int, scope: tuple[str, ...], *, top: bool = False, digest_child: bool = False
    ) -> list[bytes]:
        """Header lines, the blank line and the body of one entity, as lines without endings."""
        r = self.rng
        kind = self.pick_kind(depth, top, digest_child)
        headers = self.envelope_headers() if top else []
        body: list[bytes] = []
        if kind == "text":
            subtype = r.choice((b"plain", b"plain", b"html"))
            if not (top and r.random() < 0.3):
                headers += self.content_type(b"text/" + subtype, charset=True)
            if r.random() < 0.4:
                headers += self.field(b"Content-Transfer-Encoding",
                                      r.choice((b"7bit", b"8bit", b"quoted-printable")))
            body = [self.text_line(scope) for _ in range(r.choice((0, 1, 2, 3, 5, 8)))]
        elif kind == "base64":
            headers += self.content_type(r.choice((b"application/pdf", b"image/png")))
            headers += self.field(b"Content-Disposition", b"attachment",
                                  [b"filename=" + r.choice(_FILENAMES)])
            headers += self.field(b"Content-Transfer-Encoding", b"base64")
            data = base64.encodebytes(r.randbytes(r.randint(0, 300)))
            body = data.splitlines()
        elif kind == "binary":
            headers += self.content_type(b"application/octet-stream")
            headers += self.field(b"Content-Transfer-Encoding", r.choice((b"binary", b"8bit")))
            body = [bytes(r.choice(_BINARY) for _ in range(r.randint(0, 80)))
                    for _ in range(r.randint(0, 4))]
        elif kind == "empty":
            if digest_child or r.random() < 0.5:  # (an empty digest entry is no message)
                headers += self.content_type(b"text/plain")
        elif kind == "multipart":
            body = self.multipart(depth, scope, headers)
        elif kind == "rfc822":
            ctype = r.choice(
                (b"message/rfc822", b"message/rfc822", b"Message/RFC822", b"message/global")
            )
            headers += self.content_type(ctype)
            body = self.entity(depth + 1, scope, top=True)
        elif kind == "digest-child":
            if r.random() < 0.3:
                headers += self.field(b"Content-Description", b"digest entry")
            body = self.entity(depth + 1, scope, top=True)
        elif kind == "delivery-status":
            headers += self.content_type(b"message/delivery-status")
            body = self.delivery_status()
        headers = self.mangle_headers(headers)
        separator = [] if self.odd() else [b""]
        return headers + separator + body

    def pick_kind(self, depth: int, top: bool, digest_child: bool) -> str:
        """Which kind of entity to make at this depth."""
        r = self.rng
        if digest_child and r.random() < 0.75:
            return "digest-child" if depth < self.max_depth else "text"
        if self.odd():
            return "delivery-status"
        kinds = ["text", "text", "base64", "binary", "empty"]
        if depth < self.max_depth:
            kinds += ["multipart"] * (6 if top and depth == 0 else 3) + ["rfc822"]
        return r.choice(kinds)

    def multipart(self, depth: int, scope: tuple[str, ...], headers: list[bytes]) -> list[bytes]:
        """Append a multipart Content-Type to ``headers``; return the multipart body lines."""
        r = self.rng
        subtype = r.choice((b"mixed", b"mixed", b"alternative", b"related", b"digest", b"report",
                            b"signed", b"x-unknown"))
        boundary = self.boundary(scope)
        if self.odd():
            headers += self.content_type(b"multipart/" + subtype,
                                         param=r.choice((b"", b'boundary=""', b"boundary=")))
        else:
            param = self.boundary_param(boundary)
            headers += self.content_type(b"multipart/" + subtype, param=param)
        if self.odd():
            bad = r.choice((b"base64", b"quoted-printable", b"7bit ", b"x-uuencode"))
            headers += self.field(b"Content-Transfer-Encoding", bad)
        elif r.random() < 0.2:
            headers += self.field(b"Content-Transfer-Encoding",
                                  r.choice((b"7bit", b"8bit", b"binary", b"7BIT", b"Binary")))
        inner = (*scope, boundary)
        lines = self.filler(inner, with_self=None)
        if self.odd():
            lines.append(self.delimiter(boundary, close=True))  # a close delimiter first
        count = 0 if self.odd() else r.randint(1, 4)
        skip_start = self.odd()
        for index in range(count):
            if not (index == 0 and skip_start):
                lines.append(self.delimiter(boundary))
                while self.odd():
                    lines.append(self.delimiter(boundary))
            if r.random() < 0.06:
                lines.append(b"")  # an empty part: no headers, empty body
                if subtype == b"digest":
                    self.odd_used = True  # ... in a digest: an empty message/rfc822
            else:
                lines += self.entity(depth + 1, inner, digest_child=subtype == b"digest")
        if not self.odd():
            lines.append(self.delimiter(boundary, close=True))
            lines += self.filler(scope, with_self=boundary)
        return lines

    def delivery_status(self) -> list[bytes]:
        """Blocks of headers separated by blank lines, as in a bounce."""
        r = self.rng
        lines = [b"Reporting-MTA: dns; mx.example.org", b"Arrival-Date: Mon, 1 Jan 2024"]
        for _ in range(r.randint(1, 3)):
            lines += [b"", b"Final-Recipient: rfc822; a@example.org", b"Action: failed",
                      b"Status: 5.1.1", b"Diagnostic-Code: smtp; 550 5.1.1", b"  user unknown"]
        return lines + [b""] * r.randint(0, 2)

    # -- headers --

    def envelope_headers(self) -> list[bytes]:
        """The usual top-level header block of a message."""
        r = self.rng
        lines: list[bytes] = []
        if r.random() < 0.5:
            lines += [b"Received: from mx.example.org (mx.example.org [192.0.2.1])",
                      b"\tby helpdesk.example.com with ESMTPS id 4F2A1;",
                      b"        Mon, 1 Jan 2024 10:00:00 +0000"]
        lines += self.field(b"From", r.choice((b"Anna <anna@example.org>",
                                               b'"J\xc3\xbcrgen" <j@example.net>')))
        lines += self.field(b"To", b"support@example.com")
        subject = r.choice(_SUBJECTS)
        if r.random() < 0.3:
            lines += [b"Subject: " + subject, b" continued " + r.choice(_SUBJECTS)]
        else:
            lines += self.field(b"Subject", subject)
        if r.random() < 0.3:
            lines.append(r.choice((b"X-Empty:", b"X-Spaces:   ", b"x-lower-case: yes")))
        if r.random() < 0.1:
            lines += [b"X-Folded: a", r.choice((b" ", b"\t", b" \t ")), b"\tb"]
        lines += [b"Message-ID: <%d@example.org>" % r.randrange(10**6), b"MIME-Version: 1.0"]
        return lines

    def field(self, name: bytes, value: bytes, params: list[bytes] | None = None) -> list[bytes]:
        """One header field, its parameters sometimes folded onto continuation lines."""
        r = self.rng
        lines = [name + b":" + r.choice((b" ", b" ", b"", b"\t", b"  ")) + value]
        for param in params or []:
            if not param:
                continue
            if r.random() < 0.3:
                lines[-1] += b";"
                lines.append(r.choice((b"\t", b" ", b"    ")) + param)
            else:
                lines[-1] += r.choice((b"; ", b"; ", b";", b" ; ")) + param
        return lines

    def content_type(
        self, ctype: bytes, *, charset: bool = False, param: bytes = b""
    ) -> list[bytes]:
        """A Content-Type field, the name spelt in any case."""
        r = self.rng
        name = r.choice((b"Content-Type", b"Content-Type", b"content-type", b"CONTENT-TYPE"))
        params = [param]
        if charset:
            params.append(b"charset=" + r.choice((b"utf-8", b'"us-ascii"', b"ISO-8859-1")))
        if r.random() < 0.1:
            params.append(b'name="x.bin"')
        r.shuffle(params)
        if r.random() < 0.05:
            ctype += b" (comment)"
        return self.field(name, ctype, params)

    def mangle_headers(self, lines: list[bytes]) -> list[bytes]:
        """Sometimes add a header line the feed parser treats specially."""
        r = self.rng
        if not self.odd():
            return lines
        odd_line = r.choice((
            b"no colon here", b":empty name", b" continuation first", b"From inside headers",
            b"Subject : space before colon", b"X-\xc3\x9cnicode: eight-bit name",
            b"\x00nul: x",
        ))
        lines = list(lines)
        where = r.choice((0, len(lines), r.randint(0, len(lines))))
        lines.insert(where, odd_line)
        return lines

    # -- boundaries --

    def boundary(self, scope: tuple[str, ...]) -> str:
        """A boundary: new, one a sibling used already, or a prefix or extension of an outer one.

        When its delimiter lines are also delimiters of an outer boundary (outer ``a``,
        inner ``a--``: ``--a--`` closes both) the case is not clean any more.
        """
        r = self.rng
        siblings = [b for b in self.used_boundaries if b not in scope]
        roll = r.random()
        if scope and roll < 0.3:
            outer = r.choice(scope)
            if self.odd():
                return outer
            boundary = r.choice((outer + "--", outer + r.choice(_BCHARS), outer[:-1],
                                 outer + "-x", outer + " x"))
            boundary = boundary.rstrip() or "x"  # get_boundary() strips trailing spaces
        elif siblings and roll < 0.45:
            boundary = r.choice(siblings)
        elif roll < 0.6:
            boundary = f"----=_Part_{r.randrange(999)}_{r.randrange(10**9)}.{r.randrange(10**12)}"
        else:
            length = r.choice((1, 2, 3, 8, 20, 40, 69))
            chars = [r.choice(_BCHARS) for _ in range(length)]
            if length > 2 and r.random() < 0.2:
                chars[r.randrange(1, length - 1)] = " "
            if length > 2 and self.odd():
                # 8-bit: get_boundary() turns it into U+FFFD, so no delimiter ever matches.
                chars[r.randrange(1, length - 1)] = "\u00e9"
            boundary = "".join(chars)
        patterns = [boundary_pattern(b) for b in scope]
        if any(p.match(f"--{boundary}{end}") for p in patterns for end in ("", "--")):
            self.odd_used = True
        self.used_boundaries.append(boundary)
        return boundary

    def boundary_param(self, boundary: str) -> bytes:
        """``boundary=...`` quoted when needed (or when it likes), in a few spellings."""
        r = self.rng
        name = r.choice((b"boundary", b"boundary", b"Boundary", b"BOUNDARY"))
        value = boundary.encode()
        if r.random() < 0.05 and len(value) > 1 and '"' not in boundary:
            half = len(value) // 2
            return b'%s*0="%s"; %s*1="%s"' % (name, value[:half], name, value[half:])
        needs_quotes = bool(_TSPECIALS & set(boundary))
        if (needs_quotes or r.random() < 0.5) and not (needs_quotes and self.odd()):
            value = b'"' + value + (b' "' if r.random() < 0.05 else b'"')
        equals = b" = " if r.random() < 0.05 else b"="
        return name + equals + value

    def delimiter(self, boundary: str, close: bool = False) -> bytes:
        """A delimiter line, sometimes with trailing whitespace."""
        ws = self.rng.choice(("", "", "", " ", "\t", "  \t"))
        return ("--" + boundary + ("--" if close else "") + ws).encode()

    # -- body text --

    def filler(self, scope: tuple[str, ...], with_self: str | None) -> list[bytes]:
        """A preamble or epilogue: absent, blank lines or text (with lookalike lines)."""
        r = self.rng
        shape = r.choice(("none", "none", "blank", "blanks", "text"))
        if shape == "none":
            return []
        if shape == "blank":
            return [b""]
        if shape == "blanks":
            return [b""] * r.randint(2, 3)
        lines = [self.text_line(scope) for _ in range(r.randint(1, 4))]
        if with_self is not None and r.random() < 0.3:
            # After the close delimiter its own delimiters are plain epilogue text.
            lines.insert(r.randint(0, len(lines)), self.delimiter(with_self, r.random() < 0.5))
        return lines

    def text_line(self, scope: tuple[str, ...]) -> bytes:
        """One body line: words, an empty line, an odd character or a delimiter lookalike."""
        r = self.rng
        roll = r.random()
        if roll < 0.15:
            return b""
        if roll < 0.3 and scope:
            return self.lookalike(scope)
        if roll < 0.45:
            return r.choice(_ODD_BODY_LINES)
        return b" ".join(r.choice(_WORDS) for _ in range(r.randint(1, 12)))

    def lookalike(self, scope: tuple[str, ...]) -> bytes:
        """A line that looks like a delimiter of a boundary in scope but is none of them."""
        r = self.rng
        boundary = r.choice(scope)
        if self.odd():
            return self.delimiter(r.choice(scope), r.random() < 0.5)  # a real one, misplaced
        candidates = [
            "--" + boundary + "x", "--" + boundary + "-x", " --" + boundary,
            "--" + boundary + "--x", "--" + boundary + " x", "--" + boundary + "\t--",
            "--" + boundary.swapcase(), "-" + boundary, "--" + boundary[:-1],
            "--" + boundary + "\x0c", "--" + boundary + "--\x0b", "--" + boundary + "\x1c",
            "--" + boundary + "\udc85", "\x0c--" + boundary, "text\x1c--" + boundary,
            "\udc85--" + boundary, "\x0b--" + boundary + "--", "\u2028--" + boundary,
        ]
        patterns = [boundary_pattern(b) for b in scope]
        fakes = [c for c in candidates if not any(p.match(c) for p in patterns)]
        return r.choice(fakes).encode("utf-8", "surrogateescape") if fakes else b"--"


def generate(seed: int) -> tuple[bytes, bool]:
    """The bytes of case ``seed`` and whether the case is clean (no odd choice made)."""
    generator = Generator(seed)
    raw = generator.message()
    return raw, not generator.odd_used


_EDIT_TOKENS = (b"\n", b"\r\n", b"\r\n\r\n", b"\r", b"-", b"--", b" ", b"\t", b":", b"From ",
                b"\x0c", b"Content-Type: message/rfc822\n")


def mutate(raw: bytes, rng: random.Random) -> bytes:
    """``raw`` after a few blunt edits: bytes deleted, a whole line (often a delimiter) copied
    somewhere else, a line break, dash or colon inserted. Finds what the grammar misses."""
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        position = rng.randrange(len(data) + 1)
        roll = rng.random()
        if roll < 0.4:
            del data[position : position + rng.randint(1, 8)]
        elif roll < 0.8 and data:
            data[position:position] = rng.choice(bytes(data).splitlines(keepends=True))
        else:
            data[position:position] = rng.choice(_EDIT_TOKENS)
    return bytes(data)


@functools.cache
def corpus() -> list[tuple[str, bytes, bool, bool, str | None]]:
    """Each case run once: (label, bytes, clean, took the fast path, mismatch or None).

    ``CASES`` generated messages, then ``MUTATED`` edited copies of the first ones.
    """
    cases = []
    for seed in range(CASES):
        raw, clean = generate(seed)
        cases.append((f"generate({seed})", raw, clean))
    for seed in range(MUTATED):
        raw = mutate(generate(seed)[0], random.Random(-seed))
        cases.append((f"mutate(generate({seed})[0], random.Random({-seed}))", raw, False))
    results = []
    for label, raw, clean in cases:
        try:
            fast = split_message(raw) is not None
        except Exception:
            fast = False
        results.append((label, raw, clean, fast, mismatch(raw)))
    return results


def test_random_corpus_is_exact() -> None:
    """Whatever the splitter returns for a random case equals the feed parser's tree."""
    results = corpus()
    failures = [(label, raw, why) for label, raw, _, _, why in results if why is not None]
    if failures:
        details = [report(raw, why, label) for label, raw, why in failures[:5]]
        pytest.fail(f"{len(failures)} of {len(results)} cases differ from the feed parser\n"
                    + "\n".join(details), pytrace=False)


def test_random_corpus_takes_the_fast_path() -> None:
    """The test cannot pass by declining everything: most cases, and clean ones, go fast."""
    results = corpus()
    fast = sum(1 for *_, took, _ in results if took)
    clean = [took for _, _, is_clean, took, _ in results if is_clean]
    assert fast / len(results) >= MIN_FAST_SHARE, f"fast path on {fast} of {len(results)}"
    assert len(clean) >= CASES // 3, "the generator should make mostly clean cases"
    assert sum(clean) / len(clean) >= MIN_CLEAN_FAST_SHARE, (
        f"fast path on {sum(clean)} of {len(clean)} clean cases"
    )


def test_generator_covers_the_shapes() -> None:
    """The corpus really contains the shapes it is meant to exercise."""
    everything = b"\n".join(raw for _, raw, *_ in corpus())
    for needle in (b"\r\n", b"multipart/mixed", b"multipart/alternative", b"multipart/related",
                   b"multipart/digest", b"message/rfc822", b"message/delivery-status", b"\x0c",
                   b"\x1c", b"\x85", b"From sender@", b"\r\r\n", b"boundary*0=", b"base64",
                   b"\xd0\x9f", b"\nno colon here", b"\n:empty name"):
        assert needle in everything, needle


# --- hand-written shapes ----------------------------------------------------------------


def crlf(text: str) -> bytes:
    """``text`` as UTF-8 (lone surrogates as the raw bytes they stand for), LF made CRLF."""
    return text.encode("utf-8", "surrogateescape").replace(b"\n", b"\r\n")


def lf(text: str) -> bytes:
    """``text`` as UTF-8 (lone surrogates as the raw bytes they stand for), LF kept."""
    return text.encode("utf-8", "surrogateescape")


_PLAIN = """\
From: Anna <anna@example.org>
To: support@example.com
Subject: =?utf-8?q?Drucker_f=C3=A4llt_aus?=
Received: from mx.example.org
\tby helpdesk.example.com;
        Mon, 1 Jan 2024 10:00:00 +0000
Content-Type: text/plain; charset=utf-8

Hello,
the printer jams.
"""

_MIXED = """\
From: Anna <anna@example.org>
Subject: Grüße aus Köln
MIME-Version: 1.0
Content-Type: multipart/mixed;
\tboundary="----=_Part_1_2.3"

This is a multi-part message in MIME format.
------=_Part_1_2.3
Content-Type: multipart/alternative; boundary="alt-1"

--alt-1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hallo, der Drucker.
--alt-1
Content-Type: text/html; charset=utf-8

<p>Hallo</p>
--alt-1--

------=_Part_1_2.3
Content-Type: application/pdf; name="Bericht.pdf"
Content-Disposition: attachment; filename="Bericht.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFI+PgpzdHJlYW0K
eJwr5HIK4TI2U7AwMDBQCEnhMlTIBQAhXgOt
------=_Part_1_2.3--
Epilogue text.
"""

_FORWARDED = """\
From: Bob <bob@example.org>
Subject: Fwd: Printer
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: text/plain

See below.
--outer
Content-Type: message/rfc822

From: Anna <anna@example.org>
Subject: Printer
Content-Type: multipart/alternative; boundary="inner"

--inner
Content-Type: text/plain

jams
--inner
Content-Type: text/html

<b>jams</b>
--inner--
--outer--
"""

_TEXT_AND_ATTACHMENT = """\
Subject: attachment
Content-Type: multipart/mixed; boundary="b1"

preamble line 1
preamble line 2
--b1
Content-Type: text/plain

body
--b1
Content-Type: image/png; name="x.png"
Content-Transfer-Encoding: base64

iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==
--b1--

epilogue
"""

WELL_FORMED = {
    "plain-lf": lf(_PLAIN),
    "plain-crlf": crlf(_PLAIN),
    "mixed-alternative-base64-lf": lf(_MIXED),
    "mixed-alternative-base64-crlf": crlf(_MIXED),
    "forwarded-rfc822-lf": lf(_FORWARDED),
    "forwarded-rfc822-crlf": crlf(_FORWARDED),
    "preamble-epilogue-lf": lf(_TEXT_AND_ATTACHMENT),
    "preamble-epilogue-crlf": crlf(_TEXT_AND_ATTACHMENT),
    "utf8-subject-no-final-newline": crlf(_PLAIN.rstrip("\n")),
    "close-delimiter-at-eof": crlf(_FORWARDED.rstrip("\n")),
}


@pytest.mark.parametrize("raw", WELL_FORMED.values(), ids=WELL_FORMED.keys())
def test_well_formed_mail_takes_the_fast_path(raw: bytes) -> None:
    """Everyday mail is split by the fast path, and split exactly."""
    fast = split_message(raw)
    assert fast is not None, "well-formed mail must not fall back to the feed parser"
    assert_exact(raw)


TRICKY = {
    "lookalike-delimiters": lf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--bx\n--b-x\n --b\n--b--x\n"
        "--B\n--b \t--\n--b\n\nsecond\n--b--  \t\n"
    ),
    "inner-boundary-extends-outer": lf(
        'Content-Type: multipart/mixed; boundary="ab"\n\n--ab\n'
        'Content-Type: multipart/alternative; boundary="abc"\n\n--abc\n\nx\n--abc--\n--ab--\n'
    ),
    "inner-boundary-is-outer-close": lf(
        'Content-Type: multipart/mixed; boundary="ab"\n\n--ab\n'
        'Content-Type: multipart/alternative; boundary="ab--"\n\n--ab--\n\nx\n--ab----\n--ab--\n'
    ),
    "special-boundary": crlf(
        "Content-Type: multipart/mixed; boundary=\"'()+_,-./:=? x\"\n\n"
        "--'()+_,-./:=? x\t\n\nbody\n--'()+_,-./:=? x--\n"
    ),
    "splitlines-traps": crlf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nff\x0c--b\n\nvt\x0b--b\n\n"
        "fs\x1c--b\n\nnel\udc85--b\n\nls\u2028--b\n\n--b--"
    ),
    "digest-without-content-types": lf(
        "Content-Type: multipart/digest; boundary=d\n\n--d\n\nFrom: a@example.org\n"
        "Subject: one\n\nfirst\n--d\n\nSubject: two\n\nsecond\n--d--\n"
    ),
    "mixed-line-endings": b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\n\r\n--b\r\n"
    b"\n\nx\r\n--b\n\r\ny\n--b--\r\n\r\ntail",
    "empty-parts": lf("Content-Type: multipart/mixed; boundary=b\n\n--b\n\n--b\n\n\n--b--\n"),
    "eight-bit-headers": b"Subject: \xd0\x9f\xd1\x80\xd0\xb8\n"
    b"Content-Type: text/plain; name=\"\xd0\xbe.txt\"\n\n\xff\xfe body\n",
}


@pytest.mark.parametrize("raw", TRICKY.values(), ids=TRICKY.keys())
def test_tricky_but_valid_mail_is_exact(raw: bytes) -> None:
    """Delimiter lookalikes, odd boundaries and splitlines() traps never change the tree."""
    assert_exact(raw)


DECLINED = {
    "bare-cr": b"Subject: x\rContent-Type: text/plain\r\rbody\r",
    "from-line": b"From anna@example.org Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n",
    "missing-close-delimiter": lf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nbody\n"
    ),
    "repeated-delimiters": lf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\n\nbody\n--b--\n"
    ),
    "delivery-status": lf(
        "Content-Type: multipart/report; boundary=b\n\n--b\n"
        "Content-Type: message/delivery-status\n\nReporting-MTA: dns; x\n\n"
        "Final-Recipient: rfc822; a@example.org\nAction: failed\n--b--\n"
    ),
    "no-boundary": lf("Content-Type: multipart/mixed\n\n--b\n\nbody\n--b--\n"),
    "base64-multipart": lf(
        "Content-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: base64\n\n"
        "--b\n\nbody\n--b--\n"
    ),
    # Work no real mail needs: left to the feed parser, which checks the parse deadline.
    "separators-everywhere": b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx"
    + b" x--b" * 5000 + b"\n--b--\n",
    "megabyte-part-header": b"Content-Type: multipart/mixed; boundary=b\n\n--b\n"
    + b"X-Filler: abcdefghij\n" * 60_000 + b"\nbody\n--b--\n",
}


@pytest.mark.parametrize("raw", DECLINED.values(), ids=DECLINED.keys())
def test_odd_mail_falls_back(raw: bytes) -> None:
    """Inputs the splitter is not meant to reproduce go to the feed parser instead."""
    assert split_message(raw) is None
    assert_exact(raw)


EDGE = {
    "empty": b"",
    "only-newline": b"\n",
    "only-headers": b"Subject: x\nTo: y",
    "only-headers-with-newline": b"Subject: x\r\n",
    "no-headers": b"\nbody\n",
    "colon-first": b":x\nSubject: y\n\nbody\n",
    "continuation-first": b" x\nSubject: y\n\nbody\n",
    "no-blank-line": b"Subject: y\nbody without blank line\n",
    "empty-boundary": b'Content-Type: multipart/mixed; boundary=""\n\n--\n\nx\n----\n',
    "close-first": b"Content-Type: multipart/mixed; boundary=b\n\n--b--\n--b\n\nx\n",
    "close-first-then-close": b"Content-Type: multipart/mixed; boundary=b\n\n--b--\n\nx\n--b--\n",
    "no-start-delimiter": b"Content-Type: multipart/mixed; boundary=b\n\nno parts\n",
    "from-last-header": b"Subject: y\nFrom me\n\nbody\n",
    "same-boundary-nested": lf(
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n"
        "Content-Type: multipart/mixed; boundary=b\n\n--b\n\nx\n--b--\n--b--\n"
    ),
    "deep-nesting": b"".join(
        b"Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n" % (i, i) for i in range(80)
    ) + b"\nleaf\n" + b"".join(b"--b%d--\n" % i for i in reversed(range(80))),
    "rfc2231-mixed-continuations": (  # get_boundary() raises TypeError in both
        b"Content-Type: multipart/mixed; boundary*=x; boundary*0=y\n\n--y\n\nbody\n--y--\n"
    ),
    "deep-rfc822": b"Content-Type: message/rfc822\n\n" * 80 + b"Subject: leaf\n\nbody\n",
}


@pytest.mark.parametrize("raw", EDGE.values(), ids=EDGE.keys())
def test_edge_cases_are_exact(raw: bytes) -> None:
    """Degenerate inputs: declined or exact, never a different tree or a crash."""
    assert_exact(raw)


# --- real mail ----------------------------------------------------------------------


def mail_files() -> list[Path]:
    """Every .eml under tests/data and the bundled samples."""
    return sorted(DATA.rglob("*.eml")) + sorted(SAMPLES.glob("*.eml"))


@pytest.mark.parametrize("path", mail_files(), ids=lambda path: path.name)
def test_mail_files_are_exact(path: Path) -> None:
    """The sample mail used elsewhere in the suite splits exactly too."""
    raw = path.read_bytes()
    assert_exact(raw, str(path))
    assert_exact(raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"), f"{path} as CRLF")
