"""The one place that opens the database.

Models are bound to ``database_proxy``; ``open_database`` picks the engine from the URL
(SQLite by default, ``postgresql://`` for teams that outgrow one machine), sets SQLite up for a
cron job and a person working at the same time (WAL, foreign keys, a busy timeout), and makes
sure the schema fits the code (``migrations.prepare_schema``: SQLite upgrades itself, a shared
PostgreSQL waits for ``eddymail db migrate``). Engine errors that a person can act on (locked,
full, read-only, too new) become ``DatabaseError`` here, so no caller has to know peewee's
exception zoo.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlparse

import peewee

from eddymail.errors import DatabaseError


class _DatabaseProxy(peewee.DatabaseProxy):
    """peewee's proxy, but nested ``atomic()`` blocks get the engine's own savepoints."""

    def savepoint(self) -> peewee._savepoint:
        # peewee's proxy builds a plain savepoint itself; the SQLite one below must be used.
        return self.obj.savepoint()


database_proxy = _DatabaseProxy()

SQLITE_SCHEMES = {"sqlite", ""}
POSTGRESQL_SCHEMES = {"postgres", "postgresql"}

class _SqliteDatabase(peewee.SqliteDatabase):
    """SQLite, with a rollback that does not hide the error that caused it."""

    def rollback(self) -> None:
        """Roll back, unless SQLite already did.

        After "database or disk is full" (and some I/O errors) SQLite has rolled the
        transaction back by itself; a second ROLLBACK would raise "no transaction is active"
        and replace the error a person can act on with one nobody can.
        """
        if not self.is_closed() and not self.connection().in_transaction:
            return
        super().rollback()

    def savepoint(self) -> peewee._savepoint:
        """A savepoint whose rollback, too, keeps quiet when SQLite already rolled back."""
        return _SqliteSavepoint(self)


class _SqliteSavepoint(peewee._savepoint):
    """After "database or disk is full" inside a savepoint (a message of a fetch batch) the
    whole transaction is gone, savepoint included; ROLLBACK TO it would raise "no such
    savepoint" and hide the real error."""

    def rollback(self, begin: bool = True) -> None:
        if self.db.connection().in_transaction:
            super().rollback(begin)


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (``sqlite:////abs/path``), or None for other engines."""
    parsed = urlparse(url)
    if parsed.scheme not in SQLITE_SCHEMES:
        return None
    if parsed.scheme == "":
        return Path(url)
    # sqlite:///relative and sqlite:////absolute, as SQLAlchemy and playhouse spell them.
    return Path(parsed.path[1:] if parsed.path.startswith("//") else parsed.path.lstrip("/") or "")


def open_database(url: str, *, busy_timeout: float = 15.0,
                  prepare_schema: bool = True) -> peewee.Database:
    """Connect ``database_proxy`` to ``url``; unless told not to, prepare the schema.

    Preparing means ``migrations.prepare_schema``: a SQLite file is upgraded, any other
    engine must already be up to date; a schema newer than the code is always refused.
    ``prepare_schema=False`` is for the commands that look at or change the schema itself.
    A bare path is accepted as a SQLite file. Raises ``DatabaseError``.
    """
    path = sqlite_path(url)
    try:
        if path is not None:
            if str(path) != ":memory:":
                path = path.expanduser()
                _create_private(path)
            database: peewee.Database = _SqliteDatabase(
                str(path),
                timeout=busy_timeout,
                # Every transaction takes the write lock when it begins. A deferred one that
                # reads first and writes later cannot wait for a busy database: SQLite
                # refuses the upgrade to a writer at once, whatever the busy timeout, and a
                # fetch would fail the moment a staff member's reply is being saved.
                lock_type="IMMEDIATE",
                pragmas={
                    "journal_mode": "wal",
                    "foreign_keys": 1,
                    "busy_timeout": int(busy_timeout * 1000),
                    # WAL + NORMAL is durable against process crashes (our kill -9 case);
                    # only an OS crash can lose the last transactions.
                    "synchronous": "normal",
                },
            )
        elif urlparse(url).scheme in POSTGRESQL_SCHEMES:
            from playhouse import db_url  # (with its pools and extensions: not for SQLite)

            # A password with @ : / # % must be percent-encoded in a URL: decode it.
            settings = db_url.parse(url, unquote_password=True, unquote_user=True)
            # Waiting for a lock (a row, a thread being ingested elsewhere) gives up like
            # SQLite's busy timeout does.
            settings.setdefault("options", f"-c lock_timeout={int(busy_timeout * 1000)}")
            database = peewee.PostgresqlDatabase(**settings)
        else:
            from playhouse import db_url

            database = db_url.connect(url, unquote_password=True, unquote_user=True)
    except (ValueError, RuntimeError) as error:
        raise DatabaseError(f"Cannot use database URL {redact_url(url)}: {error}.") from None
    except OSError as error:
        raise DatabaseError(f"Cannot create the database or its folder: {error}.") from None
    with translate_errors(url):
        try:
            database_proxy.initialize(database)  # the models ask the driver for its types
            database.connect(reuse_if_open=True)
        except peewee.ImproperlyConfigured as error:
            raise _missing_driver(url, error) from None
        if prepare_schema:
            from eddymail.db import migrations

            migrations.prepare_schema(database)
    return database


def _create_private(path: Path) -> None:
    """Create the database file (and its folder) for its owner's eyes only, if new.

    The database holds other people's mail: a new folder is 0700 and a new file 0600,
    whatever the umask allows; SQLite gives its WAL and shared-memory files the database
    file's mode. Existing ones are left as their owner set them.
    """
    # Modes pass through the umask, which can only take permissions away.
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _missing_driver(url: str, error: Exception) -> DatabaseError:
    return DatabaseError(
        f"Cannot use database {redact_url(url)}: {str(error).rstrip('.')}.",
        hint="Install the PostgreSQL driver: pip install 'eddymail[postgresql]'.",
    )


def close_database() -> None:
    """Close the connection if one is open (safe to call twice)."""
    database = database_proxy.obj
    if database is not None and not database.is_closed():
        database.close()


@contextlib.contextmanager
def translate_errors(url: str = "") -> Iterator[None]:
    """Turn engine errors a person can act on into ``DatabaseError`` with a sentence."""
    try:
        yield
    except peewee.DatabaseError as error:
        raise database_error(error, url) from None


def database_error(error: peewee.DatabaseError, url: str = "") -> DatabaseError:
    """The ``DatabaseError`` (a sentence saying what to do) for an engine error."""
    where = f" ({redact_url(url)})" if url else ""
    # A failed clean-up (ROLLBACK TO a savepoint SQLite already dropped) names itself; the
    # error that started it is the one worth telling.
    while _is_cleanup_failure(error) and isinstance(error.__context__, peewee.DatabaseError):
        error = error.__context__
    # libpq's messages end in a newline and put hints on tab-indented lines: one line.
    text = " ".join(str(error).split()).rstrip(".")
    if not isinstance(error, peewee.OperationalError):
        return DatabaseError(f"Database error{where}: {text}.")
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered or "lock timeout" in lowered:
        message = (
            f"The database{where} is locked by another eddymail process; try again in a moment."
        )
    elif "full" in lowered or ("disk i/o error" in lowered and _disk_nearly_full()):
        # A full disk often shows as "disk I/O error" (SQLite could not grow its shared
        # memory file or write the WAL): free space on the database's disk tells them apart.
        if _disk_nearly_full():
            message = f"Disk full: the database{where} cannot be written; free space, then retry."
        else:
            message = (f"The database{where} is full (its size limit, or a disk full a moment "
                       "ago): free space, then retry.")
    elif "readonly" in lowered or "read-only" in lowered:
        message = f"The database{where} is read-only for this user."
    elif "unable to open" in lowered:
        message = f"Cannot open the database{where}: check the path and permissions."
    else:
        message = f"Database error{where}: {text}."
    return DatabaseError(message)


#: Less free room than this on the database's disk counts as a full disk.
NEARLY_FULL_BYTES = 1 << 20


def _disk_nearly_full() -> bool:
    """Whether the disk of the open SQLite database has (almost) no room left."""
    database = database_proxy.obj
    if not isinstance(database, peewee.SqliteDatabase) or database.database == ":memory:":
        return False
    try:
        stats = os.statvfs(os.path.dirname(os.path.abspath(database.database)))
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < NEARLY_FULL_BYTES


def _is_cleanup_failure(error: BaseException) -> bool:
    text = str(error).lower()
    return "no transaction is active" in text or "no such savepoint" in text


def redact_url(url: str) -> str:
    """The URL with any password replaced, fit for messages and logs.

    Both places a password can be given are covered: ``user:password@host`` and the
    ``?password=`` parameter that playhouse passes on to the driver.
    """
    parsed = urlparse(url)
    if not parsed.password and not parsed.query:
        # Returned as given: geturl() would turn sqlite:////abs/path into sqlite://abs/path.
        return url
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        parsed = parsed._replace(netloc=netloc)
    if parsed.query:
        query = [(key, "***" if key.lower() in ("password", "passwd") else value)
                 for key, value in parse_qsl(parsed.query, keep_blank_values=True)]
        parsed = parsed._replace(query=urlencode(query, safe="*"))
    return parsed.geturl()
