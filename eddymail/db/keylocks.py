"""Locks on names (a message's bytes, a thread), for writers on several hosts at once.

On PostgreSQL nothing serialises write transactions as a whole: two hosts ingest at the same
moment. What must not race is narrow: the same message stored twice, or two messages of one
thread each opening a ticket because neither saw the other's uncommitted one. ``hold`` takes
a transaction-scoped advisory lock per name, so only writers about the same message or
thread wait for each other, and the second one then sees what the first committed.

SQLite needs none of it: every write transaction takes the one write lock when it begins.

Locks are taken in a fixed order, so two single-message transactions never deadlock; a
transaction that ingests a batch can still meet another batch in the opposite order, which
PostgreSQL detects and breaks by failing one of them: ``retrying`` runs such a transaction
again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import TypeVar

import peewee

from eddymail.db.connection import database_proxy

T = TypeVar("T")

# SQLSTATEs that mean "run the transaction again": deadlock detected, serialization failure.
_RETRYABLE = {"40P01", "40001"}
ATTEMPTS = 5


def _key(name: str) -> int:
    """A signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8", "replace")).digest()[:8],
                          "big", signed=True)


def hold(names: Iterable[str]) -> None:
    """Take an advisory lock per name until the current transaction ends (PostgreSQL).

    Must be called inside a transaction; a no-op on SQLite.
    """
    database = database_proxy.obj
    if database is None or isinstance(database, peewee.SqliteDatabase):
        return
    for key in sorted({_key(name) for name in names if name}):
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (key,))


def is_retryable(error: BaseException) -> bool:
    """Whether the engine failed the transaction only to break a deadlock or a conflict.

    The driver's error comes as it is (peewee wraps only classes it knows by name, and the
    deadlock one is a grandchild of those) or wrapped with the original as first argument.
    """
    candidates = [error, *(arg for arg in error.args[:1] if isinstance(arg, BaseException))]
    return any(getattr(item, "pgcode", None) in _RETRYABLE for item in candidates)


def retrying(transaction: Callable[[], T]) -> T:
    """Run ``transaction`` (which opens and commits its own), again if the engine broke a
    deadlock by failing it; nothing of a failed attempt is kept, so a retry is clean."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return transaction()
        except Exception as error:
            if attempt == ATTEMPTS or not is_retryable(error):
                raise
    raise AssertionError("unreachable")
