"""One fetch at a time per database: an overlapping cron run exits at once (code 75).

SQLite: an OS file lock next to the database file, released by the kernel even when the
process is killed. PostgreSQL: a session advisory lock, which also covers fetches started
on other machines against the same database.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import filelock
import peewee

from eddymail.config import default_data_dir
from eddymail.db.connection import database_proxy, sqlite_path
from eddymail.errors import LockBusyError

_ADVISORY_KEY = 0x6564_6466  # "eddf"


def lock_path(database_url: str) -> Path:
    """The lock file for fetches into this database."""
    path = sqlite_path(database_url)
    if path is not None and str(path) != ":memory:":
        return Path(f"{path.expanduser()}.fetch.lock")
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return default_data_dir() / f"fetch-{digest}.lock"


@contextlib.contextmanager
def fetch_lock(database_url: str) -> Iterator[None]:
    """Hold the fetch lock for this database, or raise ``LockBusyError`` at once."""
    path = lock_path(database_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise LockBusyError(
            "Another eddymail fetch is running for this database; this run stops here."
        ) from None
    try:
        with _advisory_lock():
            yield
    finally:
        lock.release()


@contextlib.contextmanager
def _advisory_lock() -> Iterator[None]:
    database = database_proxy.obj
    if database is None or isinstance(database, peewee.SqliteDatabase):
        yield
        return
    got = database.execute_sql("SELECT pg_try_advisory_lock(%s)", (_ADVISORY_KEY,)).fetchone()[0]
    if not got:
        raise LockBusyError(
            "Another eddymail fetch is running against this database (on this or another "
            "machine); this run stops here."
        )
    try:
        yield
    finally:
        database.execute_sql("SELECT pg_advisory_unlock(%s)", (_ADVISORY_KEY,))
