"""0007_scale_out: ``channel.fetch_started_at``, when a fetch of the channel last began.

Several runs (cron on several hosts) go over the same channels; a run skips a channel whose
fetch began after the run itself began, on any host: that channel was just done, and what
arrives meanwhile is the next run's. So the hosts share the channels instead of each one
visiting all of them.
"""

from __future__ import annotations

import peewee as pw


def upgrade(database: pw.Database) -> None:
    """Add the column (empty: no channel was fetched under this rule yet)."""
    # Imported here, as in m0005: every run loads the migrations to compare them with the
    # database, and playhouse.migrate brings PostgreSQL's driver and extensions with it.
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

    migrator = (SqliteMigrator(database) if isinstance(database, pw.SqliteDatabase)
                else PostgresqlMigrator(database))
    migrate(migrator.add_column("channel", "fetch_started_at", pw.DateTimeField(null=True)))
