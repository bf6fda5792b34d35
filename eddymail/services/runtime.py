"""Starting up: read the configuration and open the database, once per process."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from eddymail import secrets
from eddymail.config import Config, load_config
from eddymail.db import connection as db
from eddymail.errors import ConfigError
from eddymail.safetext import for_terminal

log = logging.getLogger("eddymail")


@dataclass
class Runtime:
    """The configuration of this run and, once asked for, an open database."""

    config: Config
    database_open: bool = False

    def open_database(self) -> None:
        """Open (creating or upgrading) the configured database; idempotent."""
        if not self.database_open:
            db.open_database(
                self.config.database_url,
                busy_timeout=float(self.config.get("database", "busy_timeout")),
            )
            self.database_open = True

    def close(self) -> None:
        """Close the database if it was opened."""
        if self.database_open:
            db.close_database()
            self.database_open = False

    @property
    def database_location(self) -> str:
        """The database URL with any password hidden."""
        return db.redact_url(self.config.database_url)


def start(config_path: str | os.PathLike[str] | None, verbose: int = 0) -> Runtime:
    """Load the configuration and set up logging; the database opens on first use."""
    config = load_config(config_path)
    _setup_logging(config, verbose)
    return Runtime(config=config)


class LogFormatter(secrets.ScrubbingFormatter):
    """Log lines without secrets and with control, bidi and invisible characters spelled out.

    Records quote what mail servers answered and what mail said; they end up on a terminal,
    in cron mail and in ``tail -f`` of the log file, where an escape sequence would act.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The formatted record (traceback included), scrubbed and escaped."""
        return for_terminal(super().format(record))


def _setup_logging(config: Config, verbose: int) -> None:
    level = {0: config.get("logging", "level").upper(), 1: "INFO"}.get(verbose, "DEBUG")
    log.setLevel(level)
    log.propagate = False
    for handler in list(log.handlers):
        log.removeHandler(handler)
    handler: logging.Handler = logging.StreamHandler()
    path = config.get("logging", "file")
    if path:
        try:
            handler = logging.FileHandler(os.path.expanduser(path), encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"Cannot open log file {path}: {error.strerror}.") from None
    # Scrubbed: a traceback logged at -vv may quote a library call's arguments.
    handler.setFormatter(LogFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
