"""0002_listing_indexes: ticket lists stay index-only for every common filter.

The default view shows tickets that are not closed. ``status != 'closed'`` cannot use the
(status, last_activity_at) index, so when few tickets are open the first page walked the
whole activity index; partial indexes over the active tickets make it a short read. The
requester and assignee filters get their own activity-ordered indexes. Ingestion's
duplicate check (same Message-ID to the same channel) gets an index that leads with both.
"""

from __future__ import annotations

import peewee as pw

STATEMENTS = (
    "CREATE INDEX IF NOT EXISTS ticket_active_last_activity_at "
    "ON ticket (last_activity_at) WHERE status != 'closed'",
    "CREATE INDEX IF NOT EXISTS ticket_active_department_last_activity_at "
    "ON ticket (department_id, last_activity_at) WHERE status != 'closed'",
    "CREATE INDEX IF NOT EXISTS ticket_requester_address_last_activity_at "
    "ON ticket (requester_address, last_activity_at)",
    "CREATE INDEX IF NOT EXISTS ticket_assignee_last_activity_at "
    "ON ticket (assignee, last_activity_at)",
    "CREATE INDEX IF NOT EXISTS message_channel_id_message_id ON message (channel_id, message_id)",
)


def upgrade(database: pw.Database) -> None:
    """Create the listing indexes (plain SQL: both SQLite and PostgreSQL read it)."""
    for statement in STATEMENTS:
        database.execute_sql(statement)
