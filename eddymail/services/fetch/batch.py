"""Storing downloaded mail a batch at a time, for IMAP and POP3 alike.

A batch is parsed before its transaction (SQLite's one writer waits only for statements,
never for the parser), then stored in one transaction: a commit is the dearest statement of
all, and the server hears nothing of the batch before it. A message that fails on its own
(the schema refuses it, or storing it raises an error of eddymail's own: a bug some mail
brings out) does not cost the others: the transaction is rolled back and run again without
it, so the rest is committed, and it stays on the server untouched, to be tried again next
run (the channel reports the failure). That is cheaper than a savepoint per message, which
SQLite pays on every message (each page a message changes is copied to a sub-journal, and
the savepoint's release throws the copies away), while such a failure is rare. The
database's own failures (locked, full, gone, a deadlock to retry) fail the batch whole, as a
crash would: nothing of it was committed, nothing was told to the server.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from eddymail import errors
from eddymail.crashpoints import crash_point
from eddymail.db import keylocks
from eddymail.db.connection import database_proxy
from eddymail.services.ingest.records import IngestOptions, IngestResult, Prepared

K = TypeVar("K", bound=Hashable)

# A batch of downloads also stops at this many bytes (unless one message is larger).
BATCH_BYTES = 16 * 1024 * 1024

# DB-API 2 names every driver's exceptions alike (peewee too, and the driver's own may come
# unwrapped): a refusal of one message's values (a value too long for PostgreSQL's column, a
# constraint) is that message's failure; any other database error is the database's.
_REFUSAL_NAMES = {"IntegrityError", "DataError"}
_DATABASE_NAMES = {"DatabaseError", "InterfaceError"}
# Conditions of the machine or of eddymail's own database handling, never of one message.
_NOT_THE_MESSAGE = (OSError, MemoryError, errors.DatabaseError, errors.LockBusyError,
                    errors.TemporaryFailure)


def fails_alone(error: Exception) -> bool:
    """Whether ``error``, raised while one message was stored, is that message's failure
    (its batch goes on without it) rather than the database's or the machine's (the batch
    fails whole; a deadlock is for ``keylocks.retrying``)."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if names & _REFUSAL_NAMES:
        return True
    return not (names & _DATABASE_NAMES or isinstance(error, _NOT_THE_MESSAGE)
                or keylocks.is_retryable(error))


@dataclass
class StoredBatch(Generic[K]):
    """What became of a batch: the messages committed (with their results, in order) and
    those refused and left out (with the error, reported as the channel's)."""

    taken: list[K] = field(default_factory=list)
    results: list[IngestResult] = field(default_factory=list)
    refused: list[tuple[K, Exception]] = field(default_factory=list)


@dataclass(frozen=True)
class CrashPoints:
    """The names of a protocol's steps, for ``crashpoints`` (tests stop a fetch at each)."""

    downloaded: str
    committed: str
    stored: str | None = None


def store_batch(messages: list[tuple[K, bytes]], options_for: Callable[[K], IngestOptions],
                ingest: Callable[[K, Prepared, IngestOptions], IngestResult],
                steps: CrashPoints) -> StoredBatch[K]:
    """Parse ``messages`` ((key, raw bytes)), then store them with ``ingest`` in one
    transaction, again without any message that failed alone (see the module docstring).

    On PostgreSQL the transaction also runs again from the start when the engine failed it
    to break a deadlock with another host's batch.
    """
    from eddymail.services.ingest import pipeline as ingestion  # messages to store

    prepared: list[tuple[K, Prepared, IngestOptions]] = []
    for key, raw in messages:
        options = options_for(key)
        prepared.append((key, ingestion.prepare(raw, options), options))
    refused: list[tuple[K, Exception]] = []

    def transaction() -> StoredBatch[K]:
        batch: StoredBatch[K] = StoredBatch(refused=list(refused))
        left_out = {key for key, _ in refused}
        with database_proxy.atomic():
            for key, message, options in prepared:
                if key in left_out:
                    continue
                crash_point(steps.downloaded)
                try:
                    result = ingest(key, message, options)
                except Exception as error:
                    if not fails_alone(error):
                        raise
                    raise _Refused(key, error) from error
                if steps.stored:
                    crash_point(steps.stored)
                batch.taken.append(key)
                batch.results.append(result)
        return batch

    while True:
        try:
            batch = keylocks.retrying(transaction)
            break
        except _Refused as refusal:  # rolled back: again, without this message
            refused.append((refusal.key, refusal.error))
    crash_point(steps.committed)
    return batch


class _Refused(Exception):
    """Message ``key`` failed alone (its batch's transaction is being rolled back)."""

    def __init__(self, key: Any, error: Exception) -> None:
        super().__init__()
        self.key = key
        self.error = error


def batches(keys: list[K], sizes: dict[K, int], count: int) -> list[list[K]]:
    """``keys`` in batches of at most ``count`` messages and (unless one message is larger)
    ``BATCH_BYTES``: two batches are in memory at a time, one stored, one downloading."""
    found: list[list[K]] = []
    current: list[K] = []
    size = 0
    for key in keys:
        if current and (len(current) >= count or size + sizes[key] > BATCH_BYTES):
            found.append(current)
            current, size = [], 0
        current.append(key)
        size += sizes[key]
    if current:
        found.append(current)
    return found
