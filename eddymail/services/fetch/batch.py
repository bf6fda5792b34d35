"""Storing downloaded mail a batch at a time, for IMAP and POP3 alike.

A batch is parsed before its transaction (SQLite's one writer waits only for statements,
never for the parser), then stored in one transaction: a commit is the dearest statement of
all, and the server hears nothing of the batch before it. Each message runs in a savepoint
of its own, so one message the schema refuses is rolled back alone: the others are
committed, it stays on the server untouched and is tried again next run. Any other error
(the database locked, full, gone) fails the batch whole, as a crash would: nothing of it
was committed, nothing was told to the server.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import peewee

from eddymail.crashpoints import crash_point
from eddymail.db import keylocks
from eddymail.db.connection import database_proxy
from eddymail.services.ingest import pipeline as ingestion
from eddymail.services.ingest.pipeline import IngestOptions, IngestResult, Prepared

K = TypeVar("K", bound=Hashable)

# A batch of downloads also stops at this many bytes (unless one message is larger).
BATCH_BYTES = 16 * 1024 * 1024

# What one message may fail with without failing its batch: the schema refused something in
# it (a value too long for PostgreSQL's column, a constraint): its failure alone.
REFUSED = (peewee.IntegrityError, peewee.DataError)


@dataclass
class StoredBatch(Generic[K]):
    """What became of a batch: the messages committed (with their results, in order) and
    those refused and rolled back alone (with the error, reported as the channel's)."""

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
    transaction, each in a savepoint (see the module docstring).

    On PostgreSQL the transaction runs again from the start when the engine failed it to
    break a deadlock with another host's batch.
    """
    prepared: list[tuple[K, Prepared, IngestOptions]] = []
    for key, raw in messages:
        options = options_for(key)
        prepared.append((key, ingestion.prepare(raw, options), options))

    def transaction() -> StoredBatch[K]:
        batch: StoredBatch[K] = StoredBatch()
        with database_proxy.atomic():
            for key, message, options in prepared:
                crash_point(steps.downloaded)
                try:
                    with database_proxy.atomic():  # a savepoint: this message alone
                        result = ingest(key, message, options)
                except REFUSED as error:
                    batch.refused.append((key, error))
                    continue
                if steps.stored:
                    crash_point(steps.stored)
                batch.taken.append(key)
                batch.results.append(result)
        return batch

    batch = keylocks.retrying(transaction)
    crash_point(steps.committed)
    return batch


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
