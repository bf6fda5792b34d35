"""0011_memory: on SQLite, ``raw_message.data`` becomes the last column of its table.

A message's bytes are written in place, in pieces (``db/blobs.py``), into a row made with
``zeroblob(n)``. SQLite keeps those zeros unwritten only when no column with a value follows
the blob in the row; ``raw_message`` had ``headers_only`` and ``created_at`` after ``data``,
so the row of a 70 MB message first took 70 MB of zeros in memory. The column is copied to a
new last column, dropped, and the new one takes its name: every row is rewritten (twice), so
a big database takes a while, once (300 MB of mail: 25 s on a busy 2-core machine), and its
write-ahead log grows by as much as the mail until the next checkpoint. SQLite older than
3.35 has no ``DROP COLUMN``: there the table stays as it was, and blobs are still written
whole and right, with those zeros.

PostgreSQL streams blobs another way (``COPY``); its table is left alone.
"""

from __future__ import annotations

import sqlite3

import peewee as pw


def upgrade(database: pw.Database) -> None:
    """Move ``raw_message.data`` to the end of the table (SQLite 3.35 and later)."""
    if not isinstance(database, pw.SqliteDatabase) or sqlite3.sqlite_version_info < (3, 35):
        return
    columns = [row[1] for row in database.execute_sql('PRAGMA table_info("raw_message")')]
    if columns[-1] == "data":
        return
    for statement in (
        "ALTER TABLE raw_message ADD COLUMN data_at_end BLOB NOT NULL DEFAULT x''",
        # Emptied as it is copied: the pages it frees take the next row's copy.
        "UPDATE raw_message SET data_at_end = data, data = x''",
        "ALTER TABLE raw_message DROP COLUMN data",
        "ALTER TABLE raw_message RENAME COLUMN data_at_end TO data",
    ):
        database.execute_sql(statement)
