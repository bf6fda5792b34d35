"""Starting up: read the configuration and open the database, once per process."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eddymail import secrets
from eddymail.config import Config, load_config
from eddymail.errors import ConfigError, EddymailError
from eddymail.safetext import for_terminal

if TYPE_CHECKING:
    import peewee

log = logging.getLogger("eddymail")
_active: Config | None = None


@dataclass
class Runtime:
    """The configuration of this run and, once asked for, an open database."""

    config: Config
    _database: peewee.Database | None = field(default=None, repr=False)

    def open_database(self, *, prepare_schema: bool = True) -> peewee.Database:
        """Open the configured database once per run and return it.

        With ``prepare_schema`` (every command but those that manage the schema) a SQLite
        file is upgraded and a PostgreSQL database must already be up to date, see
        ``eddymail.db.migrations``. Raises ``DatabaseError``.
        """
        if self._database is None:
            # Imported here: --version, --help and config errors need no database driver.
            from eddymail.db import connection as db

            self._database = db.open_database(
                self.config.database_url,
                busy_timeout=float(self.config.get("database", "busy_timeout")),
                prepare_schema=prepare_schema,
            )
        return self._database

    def close(self) -> None:
        """Close the database if it was opened."""
        if self._database is not None:
            from eddymail.db import connection as db

            db.close_database()
            self._database = None

    @property
    def database_location(self) -> str:
        """The database URL with any password hidden."""
        from eddymail.db import connection as db

        return db.redact_url(self.config.database_url)


def prepare_database_library(config_path: str | os.PathLike[str] | None) -> None:
    """Import the database library for the one database a command-line run will open.

    Called by the CLI before it imports the command (see ``eddymail.db.drivers``). A
    configuration that cannot be read is left for the command to report.
    """
    try:
        config = load_config(config_path)
    except ConfigError:
        return
    from eddymail.db import drivers

    drivers.import_peewee_for(config.database_url)


def expected_error(error: BaseException) -> EddymailError | None:
    """The ``EddymailError`` that ``error`` stands for, or None when it is a bug.

    A database engine's operational errors (locked, full, read-only, unreachable) can surface
    from any statement of any command; they are conditions a person can act on, not bugs.
    """
    if isinstance(error, EddymailError):
        return error
    peewee_module = sys.modules.get("peewee")  # not loaded: no database error possible
    if peewee_module is not None and isinstance(error, peewee_module.OperationalError):
        from eddymail.db import connection as db

        return db.database_error(error)
    return None


def start(config_path: str | os.PathLike[str] | None, verbose: int = 0) -> Runtime:
    """Load the configuration and set up logging; the database opens on first use."""
    global _active
    config = load_config(config_path)
    _setup_logging(config, verbose)
    _active = config
    return Runtime(config=config)


def active_config() -> Config:
    """The configuration of this run (as :func:`start` loaded it), else the default lookup.

    For the few settings deep in a use case that no command should have to pass down (a
    team's OAuth client registration per provider, read when a token is refreshed).
    """
    return _active if _active is not None else load_config()


class LogFormatter(secrets.ScrubbingFormatter):
    """Log lines without secrets and with control, bidi and invisible characters spelled out.

    Records quote what mail servers answered and what mail said; they end up on a terminal,
    in cron mail and in ``tail -f`` of the log file, where an escape sequence would act.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record (traceback included), scrubbed and escaped."""
        return for_terminal(super().format(record))


def _setup_logging(config: Config, verbose: int) -> None:
    """Log to stderr and, when ``logging.file`` names one, to that file as well."""
    level = {0: config.get("logging", "level").upper(), 1: "INFO"}.get(verbose, "DEBUG")
    log.setLevel(level)
    log.propagate = False
    for old in list(log.handlers):
        log.removeHandler(old)
        old.close()
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    path = config.get("logging", "file")
    if path:
        try:
            handlers.append(logging.FileHandler(os.path.expanduser(path), encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"Cannot open log file {path}: {error.strerror}.") from None
    # Scrubbed: a traceback logged at -vv may quote a library call's arguments.
    formatter = LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
