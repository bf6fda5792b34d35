"""Peak memory of taking one big message in: ``eddymail ingest FILE`` in a child process.

Usage (from the repository root):
    .venv/bin/python bench/memory_peak.py                 # 50 MB attachment, three encodings
    .venv/bin/python bench/memory_peak.py --megabytes 20

For each message it prints its size, the child's peak RSS (``wait4``: the child only, not
this script), the peak of a small message (the constant: interpreter, libraries, SQLite),
and ``(peak - small) / size``: the issue's goal is a ratio under 2 (peak RSS under twice
the message size plus a constant).
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import sys
import tempfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
HEAD = (b"From: Anna <anna@customer.example>\r\nTo: help@example.test\r\n"
        b"Subject: big\r\nMessage-ID: <big-%d@customer.example>\r\n"
        b"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nSee the file.\r\n--b\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="data.bin"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n")


def message(size: int, kind: str, number: int) -> bytes:
    """A message with a ``size``-byte attachment, base64 as clients write it (``clean``),
    with junk characters mixed into every line (``junk``), or in one endless line
    (``one-line``)."""
    data = random.Random(number).randbytes(size)
    encoded = base64.b64encode(data)
    if kind == "one-line":
        body = encoded
    else:
        lines = [encoded[i:i + 76] for i in range(0, len(encoded), 76)]
        if kind == "junk":
            lines = [line[:38] + b"!*~ " + line[38:] for line in lines]
        body = b"\r\n".join(lines)
    return HEAD % number + body + b"\r\n--b--\r\n"


def peak_rss(arguments: list[str], environment: dict[str, str]) -> int:
    """Peak RSS in bytes of ``python -m eddymail ARGUMENTS`` (the child alone)."""
    pid = os.fork()
    if pid == 0:
        os.execve(sys.executable,  # noqa: S606 - the interpreter itself, no shell wanted
                  [sys.executable, "-m", "eddymail", *arguments], environment)
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"eddymail {' '.join(arguments)} failed")
    return usage.ru_maxrss * 1024  # kilobytes on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=50)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        environment = {**os.environ, "HOME": str(root), "XDG_CONFIG_HOME": str(root / "c"),
                       "XDG_DATA_HOME": str(root / "d"), "PYTHONPATH": str(REPOSITORY),
                       "EDDYMAIL_DATABASE_URL": f"sqlite:///{root / 'e.db'}"}
        peak_rss(["department", "add", "Support"], environment)
        small = root / "small.eml"
        small.write_bytes(message(10_000, "clean", 0))
        constant = peak_rss(["-q", "ingest", "--no-notify", str(small)], environment)
        print(f"small message ({small.stat().st_size:,} bytes): peak RSS {constant / 2**20:.0f} MB")
        for number, kind in enumerate(("clean", "junk", "one-line"), start=1):
            path = root / f"{kind}.eml"
            path.write_bytes(message(options.megabytes * 2**20, kind, number))
            size = path.stat().st_size
            peak = peak_rss(["-q", "ingest", "--no-notify", str(path)], environment)
            print(f"{options.megabytes} MB attachment, base64 {kind:8}: message "
                  f"{size / 2**20:.0f} MB, peak RSS {peak / 2**20:.0f} MB, "
                  f"(peak - small) / size = {(peak - constant) / size:.2f}")
            path.unlink()


if __name__ == "__main__":
    main()
