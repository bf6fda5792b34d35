"""Issue 11, class 12: exit codes scripts and mail servers can rely on.

``ingest`` reading stdin is a mail server's delivery program: every condition that may pass
(database locked, disk full, database unreachable, the PostgreSQL driver missing) must exit
75, so the mail server keeps the message and retries instead of bouncing it. No command may
call a locked database a bug (exit 1), and a full disk is called a full disk.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mailfactory import make_mail

EXIT_ENVIRONMENT, EXIT_TEMPFAIL = 4, 75


@contextlib.contextmanager
def writer_holding(database: Path) -> Iterator[None]:
    """Another process's write transaction held on ``database`` for the whole block."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(database, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("UPDATE department SET name = name")
            holding.set()
            release.wait()
            connection.execute("COMMIT")
        finally:
            connection.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    holding.wait()
    try:
        yield
    finally:
        release.set()
        thread.join()


@pytest.fixture
def short_busy_timeout(tmp_path: Path) -> str:
    config = tmp_path / "busy.toml"
    config.write_text("[database]\nbusy_timeout = 0.2\n")
    return str(config)


def no_bug_report(result) -> None:
    assert "Unexpected" not in result.stderr and "bug" not in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_a_locked_database_is_a_temporary_failure_for_a_pipe_and_never_a_bug(
        eddymail, support, database_path, short_busy_timeout, tmp_path):
    eddymail("ingest", "--department", "Support", input=make_mail("first").decode())
    mail_file = tmp_path / "m.eml"
    mail_file.write_bytes(make_mail("from a file"))
    with writer_holding(database_path):
        for mail in (make_mail("while locked"), make_mail("Re: first", in_reply_to="<x@y>")):
            piped = eddymail("-c", short_busy_timeout, "ingest", "--department", "Support",
                             input=mail.decode(), code=EXIT_TEMPFAIL)
            assert "locked" in piped.stderr and "temporary failure" in piped.stderr
            no_bug_report(piped)
        as_file = eddymail("-c", short_busy_timeout, "ingest", "--department", "Support",
                           str(mail_file), code=EXIT_ENVIRONMENT)
        assert "locked" in as_file.stderr
        no_bug_report(as_file)
        for command in (["ticket", "note", "1", "-m", "a note"], ["ticket", "close", "1"],
                        ["department", "add", "Sales"]):
            locked = eddymail("-c", short_busy_timeout, *command, code=EXIT_ENVIRONMENT)
            assert "locked" in locked.stderr, command
            no_bug_report(locked)
    eddymail("ticket", "note", "1", "-m", "a note, later")  # nothing left behind


def test_an_unreachable_database_is_a_temporary_failure_for_a_pipe(eddymail, monkeypatch):
    with socket.socket() as closed:  # a loopback port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    for url in (f"postgresql://eddy:pw@127.0.0.1:{port}/eddymail",
                f"postgres://eddy@127.0.0.1:{port}/other"):
        monkeypatch.setenv("EDDYMAIL_DATABASE_URL", url)
        piped = eddymail("ingest", "--department", "Support", input=make_mail().decode(),
                         code=EXIT_TEMPFAIL)
        assert "temporary failure" in piped.stderr
        no_bug_report(piped)
        assert "pw" not in piped.stderr


def test_a_missing_postgresql_driver_is_a_temporary_failure_for_a_pipe(tmp_path):
    """A real process in which the driver cannot be imported (as after a broken upgrade)."""
    program = ("import sys; sys.modules['psycopg2'] = None; sys.modules['psycopg'] = None\n"
               "from eddymail.cli import main\nmain()\n")
    env = {**os.environ, "EDDYMAIL_DATABASE_URL": "postgresql://eddy@127.0.0.1:9/eddymail"}
    for arguments, expected in ((["-q", "ingest"], EXIT_TEMPFAIL),
                                (["ingest", "-", "--department", "S"], EXIT_TEMPFAIL),
                                (["ticket", "list"], EXIT_ENVIRONMENT)):
        run = subprocess.run([sys.executable, "-c", program, *arguments], env=env,
                             input=make_mail(), capture_output=True, timeout=120)
        stderr = run.stderr.decode()
        assert run.returncode == expected, (arguments, run.returncode, stderr)
        assert "driver" in stderr and "eddymail[postgresql]" in stderr, stderr
        assert "Unexpected" not in stderr and "Traceback" not in stderr


# --- a full disk ------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB file system (tmpfs) of our own; the tests run as root on CI."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill(directory: Path) -> None:
    """Write a file until the disk refuses another byte."""
    with open(directory / "filler", "wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 512)


@pytest.mark.parametrize("first", ["pipe", "file", "note"])
def test_a_full_disk_is_called_a_full_disk(eddymail, small_disk, monkeypatch, tmp_path, first):
    """SQLite reports a disk that filled up under it as "disk I/O error" (it cannot grow its
    shared-memory file) or "database or disk is full": both must read "disk full", exit 75
    for a pipe and 4 for a person, and the mail goes in once there is room again."""
    database = small_disk / "eddymail.db"
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", f"sqlite:///{database}")
    eddymail("department", "add", "Support")
    eddymail("ingest", "--department", "Support", input=make_mail("before").decode())
    for leftover in small_disk.glob("eddymail.db-*"):  # a fresh process after a clean close
        leftover.unlink()
    fill(small_disk)
    mail = make_mail("while the disk is full", body="x" * 20_000 + "\n")
    mail_file = tmp_path / "m.eml"
    mail_file.write_bytes(mail)
    command, code = {
        "pipe": (["ingest", "--department", "Support"], EXIT_TEMPFAIL),
        "file": (["ingest", "--department", "Support", str(mail_file)], EXIT_ENVIRONMENT),
        "note": (["ticket", "note", "1", "-m", "y" * 20_000], EXIT_ENVIRONMENT),
    }[first]
    result = eddymail(*command, input=mail.decode(), code=code)
    assert "disk full" in result.stderr.lower(), result.stderr
    assert "I/O" not in result.stderr
    no_bug_report(result)
    (small_disk / "filler").unlink()
    eddymail("ingest", "--department", "Support", input=mail.decode())
    subjects = [t["subject"] for t in eddymail.json("ticket", "list")["tickets"]]
    assert sorted(subjects) == ["before", "while the disk is full"]
