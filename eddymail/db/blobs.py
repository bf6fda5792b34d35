"""Rows with a big blob, written without a copy of the blob: SQLite's incremental blob I/O
and PostgreSQL's COPY.

A blob bound as a statement parameter is copied on its way in: SQLite takes a copy of every
blob it binds and builds the row in memory, another; psycopg2 writes it into the SQL text in
hex, twice its size, and the statement around it once more. For a message with a 50 MB
attachment those copies were most of the memory a fetch took. ``create_with_blob`` inserts
the row with an empty blob and then writes the bytes in pieces of ``CHUNK``:

- SQLite: the blob becomes ``zeroblob(n)`` (SQLite keeps those zeros unwritten as long as
  no column with a value follows the blob in the row, hence m0011) and is filled through
  ``sqlite3.Blob``;
- PostgreSQL: the bytes are streamed with ``COPY ... FROM STDIN (FORMAT binary)`` into a
  temporary table of the transaction and moved into the row by the server.

The row and its blob are written in one transaction (a savepoint of the caller's): the row
is there whole, or not at all. Blobs under ``STREAM_ABOVE`` are bound as usual: their
copies are small, and one statement is cheaper than three.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, TypeVar

import peewee

from eddymail.crashpoints import crash_point
from eddymail.db import fastsql

M = TypeVar("M", bound=peewee.Model)

STREAM_ABOVE = 1 << 20
CHUNK = 1 << 20

# A table of the transaction that a big blob is copied into before the row takes it.
_CREATE_UPLOAD = ("CREATE TEMPORARY TABLE IF NOT EXISTS eddymail_blob_upload (data bytea) "
                  "ON COMMIT DROP")
_COPY_UPLOAD = "COPY eddymail_blob_upload (data) FROM STDIN WITH (FORMAT binary)"
_UPLOADED = peewee.SQL("(SELECT data FROM eddymail_blob_upload)")
_EMPTY_UPLOAD = "DELETE FROM eddymail_blob_upload"
# COPY's binary format: signature, flags, header extension length; one tuple of one field
# (its length, then its bytes); the trailer.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
_COPY_TRAILER = struct.pack("!h", -1)


def create_with_blob(model: type[M], blob_field: str, data: bytes | memoryview,
                     **values: Any) -> M:
    """``fastsql.create(model, blob_field=data, **values)`` without copies of ``data``."""
    if len(data) < STREAM_ABOVE:
        return fastsql.create(model, **values, **{blob_field: bytes(data)})
    with model._meta.database.atomic():  # (a savepoint in the caller's transaction)
        row = fastsql.create(model, **values, **{blob_field: b""})
        write_blob(model, blob_field, row.get_id(), data)
    setattr(row, blob_field, data)
    return row


def insert_new_with_blob(model: type[peewee.Model], blob_field: str, data: bytes | memoryview,
                         **values: Any) -> int | None:
    """``fastsql.insert_new`` with a blob, written as ``create_with_blob`` writes it: the new
    row's id, or None (and nothing written) when a row with the same unique key exists."""
    if len(data) < STREAM_ABOVE:
        return fastsql.insert_new(model, **values, **{blob_field: bytes(data)})
    with model._meta.database.atomic():  # (a savepoint in the caller's transaction)
        row_id = fastsql.insert_new(model, **values, **{blob_field: b""})
        if row_id is not None:
            write_blob(model, blob_field, row_id, data)
    return row_id


def write_blob(model: type[peewee.Model], blob_field: str, row_id: int,
               data: bytes | memoryview) -> None:
    """Put ``data`` into the blob column ``blob_field`` of row ``row_id``, piece by piece."""
    meta = model._meta
    database = meta.database
    field, key = meta.fields[blob_field], meta.primary_key
    if not isinstance(key, peewee.Field):  # peewee says False for a table without one
        raise TypeError(f"{model.__name__} has no single-column primary key")
    this_row = key == row_id
    view = memoryview(data).cast("B")
    engine = database.obj if isinstance(database, peewee.DatabaseProxy) else database
    if isinstance(engine, peewee.SqliteDatabase):
        model.update({field: peewee.fn.zeroblob(len(view))}).where(this_row).execute()
        with database.connection().blobopen(meta.table_name, field.column_name,
                                            row_id) as blob:
            for start in range(0, len(view), CHUNK):
                blob.write(view[start:start + CHUNK])
                crash_point("blob written in part")
        return
    cursor = database.cursor()
    cursor.execute(_CREATE_UPLOAD)
    cursor.copy_expert(_COPY_UPLOAD, _Pieces(_copy_stream(view)), size=CHUNK)
    model.update({field: _UPLOADED}).where(this_row).execute()
    cursor.execute(_EMPTY_UPLOAD)


def _copy_stream(view: memoryview) -> Iterator[bytes]:
    """``view`` as one row of a binary COPY, in pieces of at most ``CHUNK`` bytes."""
    yield _COPY_HEADER + struct.pack("!hi", 1, len(view))
    for start in range(0, len(view), CHUNK):
        yield bytes(view[start:start + CHUNK])
        crash_point("blob written in part")
    yield _COPY_TRAILER


class _Pieces:
    """A file for ``copy_expert`` to read: each ``read`` gives the next piece (psycopg2
    sends whatever it gets, and stops at ``b""``)."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self._pieces = pieces

    def read(self, size: int = -1) -> bytes:
        return next(self._pieces, b"")
