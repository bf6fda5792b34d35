"""0013_outbox_message_id_index: threading finds our sent mail by index, not by a scan.

Every incoming reply names the mail it answers (In-Reply-To, References), and threading looks
those Message-IDs up among the mail we sent, including the outbox, which keeps every reply,
notification and test letter ever queued. ``outbox_item.message_id`` had no index, so each
reply read the whole outbox: a cost that grows with the helpdesk's age.
"""

from __future__ import annotations

import peewee as pw

STATEMENTS = (
    "CREATE INDEX IF NOT EXISTS outbox_item_message_id ON outbox_item (message_id)",
)


def upgrade(database: pw.Database) -> None:
    """Create the index (plain SQL: both SQLite and PostgreSQL read it)."""
    for statement in STATEMENTS:
        database.execute_sql(statement)
