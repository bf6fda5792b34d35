"""0010_rtt_cursor_uidnext: ``channel_cursor.quiet_uidnext``, so an idle fetch sends no SEARCH.

The folder's UIDNEXT at the end of the last fetch pass that left nothing behind: every
message then in the folder above the baseline was in the ledger. While the folder's UIDNEXT
(in every SELECT answer) is still that number, no message arrived since, and the fetch
skips its ``UID SEARCH``; when it moved, only UIDs from it on are searched.
"""

from __future__ import annotations

import peewee as pw


def upgrade(database: pw.Database) -> None:
    """Add the column (empty: the next pass of each folder searches as before)."""
    # Imported here, as in m0005 and m0007: every run loads the migrations to compare them
    # with the database, and playhouse.migrate brings PostgreSQL's driver with it.
    from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate

    migrator = (SqliteMigrator(database) if isinstance(database, pw.SqliteDatabase)
                else PostgresqlMigrator(database))
    migrate(migrator.add_column("channel_cursor", "quiet_uidnext",
                                pw.BigIntegerField(null=True)))
