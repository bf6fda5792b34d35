"""One fetch per channel at a time: a run skips the channels another run is fetching.

A lock per channel, never one for the whole database, so an overlapping cron run, a
``watch`` and several hosts share the work instead of waiting for each other.

SQLite: an OS file lock per channel next to the database file, released by the kernel even
when the process is killed. PostgreSQL: a session advisory lock per channel, taken on the
connection of the thread that fetches; it covers every host using the database and dies
with its session (a killed process, a lost connection), so no lease is ever left behind.
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

# "eddf": the first half of every channel's advisory lock key; the channel id is the second.
_ADVISORY_CLASS = 0x6564_6466


def lock_directory(database_url: str) -> Path:
    """The directory of the channel lock files for this database."""
    path = sqlite_path(database_url)
    if path is not None and str(path) != ":memory:":
        return Path(f"{path.expanduser()}.locks")
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return default_data_dir() / f"locks-{digest}"


def channel_lock_path(database_url: str, channel_id: int) -> Path:
    """The lock file of one channel (SQLite)."""
    return lock_directory(database_url) / f"channel-{channel_id}.lock"


@contextlib.contextmanager
def channel_lock(channel_id: int) -> Iterator[bool]:
    """Try to take the lock of one channel of the open database; yields whether it was taken.

    Call it in the thread that fetches: on PostgreSQL the lock belongs to that thread's
    connection. Never waits: a busy channel is another run's work right now.
    """
    database = database_proxy.obj
    if not isinstance(database, peewee.SqliteDatabase):
        with _advisory_lock(database, channel_id) as taken:
            yield taken
        return
    path = channel_lock_path(f"sqlite:///{database.database}", channel_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A new object per attempt (and not thread-local), so two threads of this process
    # exclude each other exactly like two processes do.
    lock = filelock.FileLock(str(path), timeout=0, thread_local=False)
    try:
        lock.acquire()
    except filelock.Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


@contextlib.contextmanager
def _advisory_lock(database: peewee.Database, channel_id: int) -> Iterator[bool]:
    cursor = database.execute_sql("SELECT pg_try_advisory_lock(%s, %s)",
                                  (_ADVISORY_CLASS, channel_id))
    if not cursor.fetchone()[0]:
        yield False
        return
    try:
        yield True
    finally:
        # A broken connection took the lock with it: nothing left to release then.
        with contextlib.suppress(peewee.DatabaseError, peewee.InterfaceError):
            database.execute_sql("SELECT pg_advisory_unlock(%s, %s)",
                                 (_ADVISORY_CLASS, channel_id))
