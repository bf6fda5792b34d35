"""Importing peewee without the drivers of database engines a command-line run does not use.

peewee imports every driver it knows when it is imported itself: psycopg2 (with libpq and an
OpenSSL of its own), psycopg, pymysql. For a SQLite database that is 10 MiB of memory and
more CPU time than the rest of a mail server's ``eddymail ingest`` run (issue 14).

A command-line run opens exactly one database, the one its configuration names, and the CLI
reads that before it imports a command (and with it peewee): ``import_peewee_for(url)`` then
imports peewee with the other engines' drivers hidden. That is the only caller. Tests, a
program embedding eddymail, anything that may open a second database in the same process,
import peewee the ordinary way and keep every driver.
"""

from __future__ import annotations

import sys
from urllib.parse import urlparse

# The drivers peewee tries to import, by the engine they serve. sqlite3 is never hidden.
_DRIVERS = {
    "postgresql": ("psycopg2", "psycopg2cffi", "psycopg"),
    "mysql": ("pymysql", "MySQLdb"),
}
_ENGINES = {"": "sqlite", "sqlite": "sqlite", "postgres": "postgresql",
            "postgresql": "postgresql", "mysql": "mysql"}


def import_peewee_for(url: str) -> None:
    """Import peewee, hiding from it the drivers of every engine but ``url``'s.

    Does nothing when peewee is imported already, or for a URL of an engine not known here
    (peewee then sees every driver). Hidden drivers stay importable for everything else:
    they are hidden only while peewee's own module runs.
    """
    if "peewee" in sys.modules:
        return
    engine = _ENGINES.get(urlparse(url).scheme.partition("+")[0])
    hidden = [driver for other, drivers in _DRIVERS.items() if engine and other != engine
              for driver in drivers if driver not in sys.modules]
    # A None entry makes "import psycopg2" raise ImportError, which peewee expects for a
    # driver that is not installed.
    for driver in hidden:
        sys.modules[driver] = None  # type: ignore[assignment]
    try:
        import peewee  # noqa: F401
    finally:
        for driver in hidden:
            del sys.modules[driver]
