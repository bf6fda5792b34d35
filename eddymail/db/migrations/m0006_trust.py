"""0006_trust: a reused Message-ID is marked, and an outbox send knows when DATA began.

- ``message.message_id_reused``: a different message that came with the Message-ID of one
  already stored (a broken client, a list that rewrites, an attacker pre-empting the ID) is
  stored anyway and marked, so staff can tell why threading by that ID is ambiguous.
- ``outbox_item.data_started_at``: set just before the SMTP DATA command. After a crash a
  row with it set may have been delivered, one without it was certainly not: the outbox
  decides how soon to send again by it (see ``services.outgoing.outbox``).
"""

from __future__ import annotations

import peewee as pw


def upgrade(database: pw.Database) -> None:
    """Add the two columns (plain SQL that SQLite and PostgreSQL both read)."""
    false = "0" if isinstance(database, pw.SqliteDatabase) else "false"
    database.execute_sql(
        f"ALTER TABLE message ADD COLUMN message_id_reused BOOLEAN NOT NULL DEFAULT {false}")
    database.execute_sql("ALTER TABLE outbox_item ADD COLUMN data_started_at TIMESTAMP")
