"""0003_postgresql_text_columns: no length limit on text columns, on PostgreSQL too.

peewee spells a ``CharField`` as ``VARCHAR(255)``. SQLite ignores the length; PostgreSQL
enforces it, so one mail with a longer display name, address or content type could not be
stored there, and a fetch stops at a message it cannot store: the channel was stuck behind
it for good. Mail is hostile input whose header values have no useful bound below the
parser's own limits, and ``text`` is what SQLite has always stored. ``varchar(n)`` to
``text`` is binary-compatible in PostgreSQL: no table rewrite, and the indexes stay.
"""

from __future__ import annotations

import peewee as pw

# eddymail's tables as of this migration; the database may well hold other applications' too.
TABLES = (
    "schema_migration", "department", "channel", "channel_cursor", "setting", "user", "ticket",
    "ticket_participant", "raw_message", "message", "attachment", "ledger_entry",
    "outbox_item", "template", "error_log_entry",
)


def upgrade(database: pw.Database) -> None:
    """Turn every ``character varying`` column of eddymail's tables into ``text``."""
    if isinstance(database, pw.SqliteDatabase):
        return  # SQLite never enforced the length: nothing to change
    cursor = database.execute_sql(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND data_type = 'character varying' "
        "AND table_name IN %s ORDER BY table_name, ordinal_position",
        (TABLES,),
    )
    for table, column in cursor.fetchall():
        database.execute_sql(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE text')
