"""Issue 11, class 10: a message with big attachments is taken in with less than twice its
size in memory (plus a constant), every attachment byte for byte, whole or not at all, on
SQLite and on PostgreSQL.

Big blobs are written in pieces (``eddymail/db/blobs.py``), so these messages carry
attachments over ``blobs.STREAM_ABOVE`` in every transfer encoding the parser undoes, nested
and forwarded, and one small one (bound as usual). The memory tests measure memory, never
time: the peak of a child process's resident memory (``VmHWM``: its own, whatever it
inherited before ``exec``) and the parser's and the pipeline's Python allocations
(``tracemalloc``). ``bench/memory_peak.py`` prints the figures for a 50 MB attachment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import random
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from eddymail.crashpoints import CRASH_ENV, CRASH_EXIT_CODE
from eddymail.mail.message.parse import ParseLimits, parse_message
from tests.workcount import traced_peak

MIB = 2**20
REPOSITORY = Path(__file__).resolve().parents[2]


def _lines(encoded: bytes, width: int = 76) -> bytes:
    return b"\r\n".join(encoded[i:i + width] for i in range(0, len(encoded), width))


def _leaf(content_type: str, name: str, encoding: str, body: bytes) -> bytes:
    return (f"Content-Type: {content_type}; name=\"{name}\"\r\n"
            f"Content-Disposition: attachment; filename=\"{name}\"\r\n"
            f"Content-Transfer-Encoding: {encoding}\r\n\r\n").encode() + body


def _multipart(subtype: str, boundary: str, parts: list[bytes], head: bytes = b"") -> bytes:
    out = head + f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
    for part in parts:
        out += f"--{boundary}\r\n".encode() + part + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def _uuencoded(data: bytes) -> bytes:
    lines = [binascii.b2a_uu(data[i:i + 45]).rstrip(b"\n") for i in range(0, len(data), 45)]
    return b"begin 644 table.dat\r\n" + b"\r\n".join(lines) + b"\r\n`\r\nend"


def big_message(seed: int = 1, scale: float = 1.0) -> tuple[bytes, dict[str, bytes], bytes]:
    """A message with attachments in every encoding, nested and in a forwarded message;
    (raw, {filename: bytes expected}, the forwarded message's attachment)."""
    rng = random.Random(seed)

    def data(megabytes: float) -> bytes:
        return rng.randbytes(int(megabytes * scale * MIB))

    clean, junk, printable, binary = data(1.5), data(1.2), data(1.1), data(1.0)
    eight_bit = b"\r\n".join(bytes(rng.choice(b"abc xyz\xe4\xf6\xfc\xe9") for _ in range(70))
                             for _ in range(int(1.3 * scale * MIB) // 72))
    small, image, forwarded_file = data(0.02), data(1.4), data(1.2)
    junked = b"\r\n".join(line[:30] + b"!*~ " + line[30:]
                          for line in _lines(base64.b64encode(junk)).split(b"\r\n"))
    related = _multipart("related", "rel", [
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>See <img src=\"cid:pic\"></p>",
        b"Content-ID: <pic>\r\n" + _leaf("image/png", "picture.png", "base64",
                                         _lines(base64.b64encode(image)))])
    alternative = _multipart("alternative", "alt", [
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nSee the picture.", related])
    inner = _multipart("mixed", "inner", [
        b"Content-Type: text/plain\r\n\r\nThe file you asked for.",
        _leaf("application/octet-stream", "forwarded.bin", "base64",
              _lines(base64.b64encode(forwarded_file)))],
        head=b"From: Boris <boris@elsewhere.example>\r\nSubject: the file\r\n"
             b"Date: Wed, 25 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\n")
    raw = _multipart("mixed", "outer", [
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nHere are the files.",
        _leaf("application/pdf", "clean.pdf", "base64", _lines(base64.b64encode(clean))),
        _leaf("application/octet-stream", "junk.bin", "base64", junked),
        _leaf("application/octet-stream", "printable.bin", "quoted-printable",
              binascii.b2a_qp(printable, istext=False).replace(b"\n", b"\r\n")),
        _leaf("text/csv", "eight-bit.csv", "8bit", eight_bit),
        _leaf("application/octet-stream", "table.dat", "x-uuencode", _uuencoded(binary)),
        _leaf("application/octet-stream", "small.bin", "base64", _lines(base64.b64encode(small))),
        alternative,
        b"Content-Type: message/rfc822\r\n"
        b"Content-Disposition: attachment; filename=\"forwarded.eml\"\r\n\r\n" + inner,
    ], head=b"From: Anna <anna@customer.example>\r\nTo: help@example.test\r\n"
            b"Subject: big files\r\nMessage-ID: <big-%d@customer.example>\r\n"
            b"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" % seed)
    expected = {"clean.pdf": clean, "junk.bin": junk, "printable.bin": printable,
                "eight-bit.csv": eight_bit, "table.dat": binary, "small.bin": small,
                "picture.png": image}
    return raw, expected, forwarded_file


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, eddymail, database_path) -> Callable[[str], list[tuple[Any, ...]]]:
    """The database the CLI uses (a Support department in it); a function running SQL on it."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        server = request.getfixturevalue("postgres_server")
        request.getfixturevalue("monkeypatch").setenv("EDDYMAIL_DATABASE_URL", url)
        eddymail("db", "migrate")
        eddymail("department", "add", "Support")
        name = urlparse(url).path.lstrip("/")
        return lambda sql: server.execute(sql, database=name)
    eddymail("department", "add", "Support")

    def on_sqlite(sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(database_path) as connection:
            return connection.execute(sql).fetchall()

    return on_sqlite


def stored_attachments(query: Callable[[str], list[tuple[Any, ...]]]) -> dict[str, tuple]:
    return {name: (size, sha256, bytes(data)) for name, size, sha256, data in
            query("SELECT filename, size, sha256, data FROM attachment")}


def test_attachments_in_every_encoding_are_stored_byte_for_byte(engine, eddymail, tmp_path):
    raw, expected, forwarded_file = big_message()
    path = tmp_path / "big.eml"
    path.write_bytes(raw)
    outcome = eddymail.json("ingest", "--no-notify", str(path))["messages"][0]
    assert outcome["status"] == "new_ticket"
    stored = stored_attachments(engine)
    for name, data in expected.items():
        assert stored[name] == (len(data), hashlib.sha256(data).hexdigest(), data), name
    # The forwarded message is one attachment, with its own inside it.
    (forwarded,) = [item for item in parse_message(raw).attachments
                    if item.filename == "forwarded.eml"]
    assert len(forwarded.data) > MIB and stored["forwarded.eml"][2] == forwarded.data
    assert [item.data for item in parse_message(forwarded.data).attachments] == [forwarded_file]
    assert set(stored) == {*expected, "forwarded.eml"}
    assert [bytes(data) for (data,) in engine("SELECT data FROM raw_message")] == [raw]
    # And they come out again as they went in.
    ticket = outcome["ticket_id"]
    listed = eddymail.json("ticket", "attachments", str(ticket))["attachments"]
    number = next(item["id"] for item in listed if item["filename"] == "clean.pdf")
    (tmp_path / "out").mkdir()
    saved = eddymail.json("ticket", "attachment", "save", str(number), "--to",
                          str(tmp_path / "out"))["saved"]
    assert Path(saved["path"]).read_bytes() == expected["clean.pdf"]


def test_a_crash_while_a_blob_is_written_leaves_nothing_and_the_next_run_takes_it(
        engine, eddymail, tmp_path):
    raw, expected, _ = big_message(seed=2)
    path = tmp_path / "big.eml"
    path.write_bytes(raw)
    crashed = subprocess.run(
        [sys.executable, "-m", "eddymail", "-q", "ingest", "--no-notify", str(path)],
        env={**os.environ, CRASH_ENV: "blob written in part", "PYTHONPATH": str(REPOSITORY)},
        capture_output=True, timeout=300, check=False)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    for table in ("raw_message", "message", "attachment", "ticket", "ledger_entry"):
        assert engine(f"SELECT COUNT(*) FROM {table}") == [(0,)], table
    outcome = eddymail.json("ingest", "--no-notify", str(path))["messages"][0]
    assert outcome["status"] == "new_ticket"
    stored = stored_attachments(engine)
    assert {name: stored[name][2] for name in expected} == expected
    assert [bytes(data) for (data,) in engine("SELECT data FROM raw_message")] == [raw]


CHILD = """
import runpy, sys
def peak():
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
def ingest(path):
    sys.argv = ["eddymail", "-q", "ingest", "--no-notify", path]
    try:
        runpy.run_module("eddymail", run_name="__main__")
    except SystemExit as exit:
        assert not exit.code, exit.code
small, big = sys.argv[1:]
ingest(small)
before = peak()
ingest(big)
print(before, peak())
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_a_big_attachment_takes_less_than_twice_the_message_in_memory(engine, tmp_path):
    """The whole process, SQLite's and psycopg2's memory included: the peak grows by less
    than twice the message over that of a small one (it was three times)."""
    small, big = tmp_path / "small.eml", tmp_path / "big.eml"
    small.write_bytes(big_message(seed=3, scale=0.01)[0])
    raw = one_attachment(24 * MIB)
    big.write_bytes(raw)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(small), str(big)], capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)}, timeout=300, check=False)
    assert child.returncode == 0, child.stderr
    before, after = map(int, child.stdout.split())
    assert engine("SELECT MAX(size) FROM attachment") == [(24 * MIB,)]
    assert after - before < 2 * len(raw), f"{(after - before) / len(raw):.2f} x the message"


def one_attachment(size: int, encoding: str = "base64") -> bytes:
    """A message with one ``size``-byte attachment in base64 (as bench/memory_peak.py) or
    8bit (lines of random bytes other than CR and LF)."""
    data = random.Random(size).randbytes(size)
    if encoding == "8bit":
        body = _lines(data.replace(b"\r", b"x").replace(b"\n", b"y"))
    else:
        body = _lines(base64.b64encode(data))
    return _multipart("mixed", "b", [
        b"Content-Type: text/plain\r\n\r\nSee the file.",
        _leaf("application/octet-stream", "data.bin", encoding, body)],
        head=b"From: Anna <anna@customer.example>\r\nSubject: big\r\n"
             b"Message-ID: <big@customer.example>\r\nMIME-Version: 1.0\r\n")


@pytest.mark.parametrize("encoding", ["base64", "8bit"])
def test_the_pipeline_makes_no_python_copy_of_the_message_or_its_attachment(
        engine, eddymail, tmp_path, encoding):
    """In the process: the file read, the decoded attachment (none for 8bit: a view of the
    file's bytes), little else (a slice of the message, a lower-cased copy or a driver's
    quoted blob would each add the message)."""
    raw = one_attachment(8 * MIB, encoding)
    path, warm_up = tmp_path / "big.eml", tmp_path / "small.eml"
    path.write_bytes(raw)
    warm_up.write_bytes(big_message(seed=4, scale=0.01)[0])
    eddymail("ingest", "--no-notify", str(warm_up))  # modules imported on first use: not measured
    with traced_peak() as peak:
        outcome = eddymail.json("ingest", "--no-notify", str(path))["messages"][0]
    assert outcome["status"] == "new_ticket"
    decoded = 8 * MIB if encoding == "base64" else 0
    # The constant: pieces of a MiB or two (a lower-cased window, a blob's piece in transit).
    assert peak.bytes < len(raw) + decoded + 6 * MIB, f"{peak.bytes / len(raw):.2f} x the message"


def test_the_upgrade_moves_the_raw_bytes_last_and_keeps_every_message(eddymail, database_path):
    """m0011 rewrites raw_message with ``data`` last (SQLite): the bytes, the rows that point
    at them and the unique SHA-256 stay; the mail is still there to be retried."""
    import peewee

    from eddymail.db import migrations
    from eddymail.db.connection import database_proxy

    database = peewee.SqliteDatabase(str(database_path))
    database_proxy.initialize(database)
    database.connect()
    migrations.apply_migrations(database, until="0009_desk2_tickets")
    raws = [one_attachment(2 * MIB), b"Subject: small\r\n\r\nnot parsed yet\r\n"]
    database.execute_sql("INSERT INTO department (name, created_at) VALUES ('Support', "
                         "'2026-01-01 00:00:00')")
    for raw in raws:
        sha256 = hashlib.sha256(raw).hexdigest()
        raw_id = database.execute_sql(
            "INSERT INTO raw_message (sha256, size, data, headers_only, created_at) "
            "VALUES (?, ?, ?, 0, '2026-01-01')", (sha256, len(raw), raw)).lastrowid
        database.execute_sql(
            "INSERT INTO ledger_entry (source, sha256, size, status, error, raw_id, server_done, "
            "created_at, updated_at) VALUES ('file', ?, ?, 'quarantined', 'old bug', ?, 0, "
            "'2026-01-01', '2026-01-01')", (sha256, len(raw), raw_id))
    database.close()
    eddymail("init")
    with sqlite3.connect(database_path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(raw_message)")]
        stored = [bytes(data) for (data,) in connection.execute(
            "SELECT r.data FROM ledger_entry l JOIN raw_message r ON r.id = l.raw_id "
            "ORDER BY l.id")]
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        unique = [row for row in connection.execute("PRAGMA index_list(raw_message)") if row[2]]
    assert columns[-1] == "data" and set(columns) == {"id", "sha256", "size", "headers_only",
                                                      "created_at", "data"}
    assert stored == raws and unique
    retried = eddymail.json("mail", "retry", "1", code=None)
    assert retried["result"]["status"] == "new_ticket", retried
    (attachment,) = eddymail.json("ticket", "attachments", "1")["attachments"]
    assert attachment["size"] == 2 * MIB


def test_a_forwarded_message_is_copied_once_and_its_files_are_not_decoded():
    """A message/rfc822 part is stored as one .eml (written out again: one copy); the
    forwarded message's own files are inside it, so they are not decoded for the body's walk
    (that and the write-out made 2.9 times the message above its bytes)."""
    inner = one_attachment(8 * MIB)
    raw = (b"From: Anna <anna@customer.example>\r\nSubject: Fwd: big\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="o"\r\n\r\n--o\r\n'
           b"Content-Type: text/plain\r\n\r\nSee below.\r\n--o\r\n"
           b"Content-Type: message/rfc822\r\n\r\n" + inner + b"\r\n--o--\r\n")
    with traced_peak() as peak:
        parsed = parse_message(raw, ParseLimits(max_message_bytes=2**30))
    (forwarded,) = parsed.attachments
    assert bytes(forwarded.data) == inner
    assert "See below." in parsed.body_text and "See the file." in parsed.body_text
    assert peak.bytes < 1.1 * len(raw), f"{peak.bytes / len(raw):.2f} x the message"
