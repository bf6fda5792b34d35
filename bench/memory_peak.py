"""Peak memory of taking one big message in: ``eddymail ingest FILE`` in a child process.

Usage (from the repository root):
    .venv/bin/python bench/memory_peak.py                 # 50 MB attachment, three encodings
    .venv/bin/python bench/memory_peak.py --megabytes 20
    .venv/bin/python bench/memory_peak.py --fetch         # also fetched over IMAP and POP3

For each message it prints its size, the child's peak RSS (``wait4``: the child only, not
this script), the peak of a small message (the constant: interpreter, libraries, SQLite),
and ``(peak - small) / size``: the issue's goal is a ratio under 2 (peak RSS under twice
the message size plus a constant). ``--fetch`` also runs ``eddymail fetch`` of the clean
message from a private Dovecot (as root, like the tests) over IMAP and over POP3, measured
the same way against a small message fetched the same way.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
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
        b"Content-Transfer-Encoding: %s\r\n\r\n")


def message(size: int, kind: str, number: int) -> bytes:
    """A message with a ``size``-byte attachment, base64 as clients write it (``clean``),
    with junk characters mixed into every line (``junk``), or in one endless line
    (``one-line``); or 8bit (``8bit``: lines of 76 random bytes other than CR and LF)."""
    data = random.Random(number).randbytes(size)
    if kind == "8bit":
        data = data.replace(b"\r", b"x").replace(b"\n", b"y")
        body = b"\r\n".join(data[i:i + 76] for i in range(0, len(data), 76))
        return HEAD % (number, b"8bit") + body + b"\r\n--b--\r\n"
    encoded = base64.b64encode(data)
    if kind == "one-line":
        body = encoded
    else:
        lines = [encoded[i:i + 76] for i in range(0, len(encoded), 76)]
        if kind == "junk":
            lines = [line[:38] + b"!*~ " + line[38:] for line in lines]
        body = b"\r\n".join(lines)
    return HEAD % (number, b"base64") + body + b"\r\n--b--\r\n"


def peak_rss(arguments: list[str], environment: dict[str, str], output: Path,
             stdin: Path | None = None) -> int:
    """Peak RSS in bytes of ``python -m eddymail ARGUMENTS`` (the child alone); its standard
    output goes to ``output``; the bytes of ``stdin`` are written into its standard input,
    a pipe."""
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(writing)
        os.dup2(reading, 0)
        os.dup2(os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
        os.execve(sys.executable,  # noqa: S606 - the interpreter itself, no shell wanted
                  [sys.executable, "-m", "eddymail", *arguments], environment)
    os.close(reading)
    with open(writing, "wb") as pipe:
        if stdin is not None:
            pipe.write(stdin.read_bytes())
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"eddymail {' '.join(arguments)} failed")
    return usage.ru_maxrss * 1024  # kilobytes on Linux


def ingest_peak(path: Path, environment: dict[str, str], *, pipe: bool = False) -> int:
    """Peak RSS of ``eddymail ingest PATH`` (with ``pipe``: of ``eddymail ingest`` reading
    the message from a pipe, as a mail server delivers it), which must make a new ticket (a
    quarantined message would measure another path: the size limit is raised for this)."""
    output = path.with_suffix(".json")
    arguments = ["--json", "ingest", "--no-notify"]
    peak = (peak_rss(arguments, environment, output, stdin=path) if pipe
            else peak_rss([*arguments, str(path)], environment, output))
    outcome = json.loads(output.read_text())["messages"][0]
    if outcome["status"] != "new_ticket":
        raise SystemExit(f"{path.name} was not taken in: {outcome}")
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--fetch", action="store_true",
                        help="also fetch the message from a private Dovecot (IMAP, POP3)")
    options = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        config = root / "eddymail.toml"
        config.write_text(f"[fetch]\nmax_message_bytes = {4 * options.megabytes * 2**20}\n")
        environment = {**os.environ, "HOME": str(root), "XDG_CONFIG_HOME": str(root / "c"),
                       "XDG_DATA_HOME": str(root / "d"), "PYTHONPATH": str(REPOSITORY),
                       "EDDYMAIL_CONFIG": str(config),
                       "EDDYMAIL_DATABASE_URL": f"sqlite:///{root / 'e.db'}"}
        peak_rss(["department", "add", "Support"], environment, root / "department.txt")
        small = root / "small.eml"
        small.write_bytes(message(10_000, "clean", 0))
        constant = ingest_peak(small, environment)
        print(f"small message ({small.stat().st_size:,} bytes): peak RSS {constant / 2**20:.0f} MB")
        cases = [("base64 clean", "clean", False), ("base64 junk", "junk", False),
                 ("base64 one-line", "one-line", False), ("8bit", "8bit", False),
                 ("base64 clean, stdin", "clean", True)]
        for number, (label, kind, pipe) in enumerate(cases, start=1):
            path = root / f"{number}.eml"
            path.write_bytes(message(options.megabytes * 2**20, kind, number))
            size = path.stat().st_size
            peak = ingest_peak(path, environment, pipe=pipe)
            print(f"{options.megabytes} MB attachment, {label:19}: message "
                  f"{size / 2**20:.0f} MB, peak RSS {peak / 2**20:.0f} MB, "
                  f"(peak - small) / size = {(peak - constant) / size:.2f}")
            path.unlink()
    if options.fetch:
        fetch_peaks(options.megabytes)
    print(f"load: {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} {os.getloadavg()[2]:.1f}")


def fetch_peaks(megabytes: int) -> None:
    """``eddymail fetch`` of a small and of the big message over IMAP and over POP3."""
    sys.path.insert(0, str(REPOSITORY))
    from bench.childprocess import mib
    from bench.mailboxes import Workspace, seed_maildir
    from tests.harness.certs import make_pki
    from tests.harness.dovecot import start_dovecot

    scratch = Path(tempfile.mkdtemp(prefix="eddymail-memory-"))
    dovecot_dir = Path(tempfile.mkdtemp(prefix="eddymail-memory-dovecot-"))
    server = None
    try:
        server = start_dovecot(dovecot_dir, make_pki(scratch / "pki"))
        for protocol in ("imap", "pop3"):
            peaks, size_on_wire = {}, 0
            for label, size in (("small", 10_000), ("big", megabytes * 2**20)):
                user = server.create_user(f"{protocol}{label}")
                raw = message(size, "clean", 1 if label == "big" else 0)
                seed_maildir(server, user, [raw])
                workspace = Workspace(scratch / f"{protocol}-{label}")
                config = workspace.directory / "eddymail.toml"
                config.write_text(f"[fetch]\nmax_message_bytes = {4 * len(raw)}\n")
                workspace.add_channel(server, user, "memory", protocol)
                peaks[label] = workspace.measured("-q", "-c", str(config), "fetch",
                                                  "--initial", "all").max_rss
                if workspace.count("attachment") != 1:
                    raise SystemExit(f"{protocol} {label}: the message was not taken in")
                size_on_wire = len(raw)
            print(f"fetch over {protocol.upper()}: small message peak RSS {mib(peaks['small'])}; "
                  f"{megabytes} MB attachment ({mib(size_on_wire)}): peak RSS "
                  f"{mib(peaks['big'])}, (peak - small) / size = "
                  f"{(peaks['big'] - peaks['small']) / size_on_wire:.2f}")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(dovecot_dir, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
