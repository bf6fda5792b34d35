"""0009_desk2_tickets: canned replies, priorities, tags and merged tickets.

- ``snippet``: canned replies by name (``snippet add``, ``ticket reply --snippet``);
- ``ticket.priority`` (low | normal | high | urgent, every existing ticket ``normal``), with
  an activity-ordered index so ``ticket list --priority`` reads its page from it;
- ``ticket_tag``: a ticket's tags, one row each, indexed by tag for ``ticket list --tag``;
- ``ticket.merged_into_id``: the ticket this one was merged into (``ticket merge``), so
  mail that still carries the old ticket's tag threads into the new one.

String columns are ``text`` (see 0003).
"""

from __future__ import annotations

from datetime import UTC, datetime

import peewee as pw
from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate


def upgrade(database: pw.Database) -> None:
    """Create the snippet and tag tables and add the priority and merge columns."""

    class Base(pw.Model):
        class Meta:
            legacy_table_names = False

    class Ticket(Base):
        id = pw.AutoField()
        subject = pw.TextField()

    class Snippet(Base):
        id = pw.AutoField()
        name = pw.TextField(unique=True)
        body = pw.TextField(default="")
        created_by = pw.TextField(default="")
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()

    class TicketTag(Base):
        id = pw.AutoField()
        ticket = pw.ForeignKeyField(Ticket, on_delete="CASCADE")
        name = pw.TextField()
        created_at = pw.DateTimeField(default=lambda: datetime.now(UTC).replace(tzinfo=None))

        class Meta:
            indexes = ((("ticket", "name"), True), (("name", "ticket"), False))

    tables = [Snippet, TicketTag]
    with database.bind_ctx([Ticket, *tables]):
        database.create_tables(tables)
        migrator = (SqliteMigrator(database) if isinstance(database, pw.SqliteDatabase)
                    else PostgresqlMigrator(database))
        migrate(
            migrator.add_column("ticket", "priority", pw.TextField(default="normal")),
            migrator.add_column("ticket", "merged_into_id", pw.ForeignKeyField(
                Ticket, null=True, on_delete="SET NULL", field=Ticket.id)),
        )
        database.execute_sql("CREATE INDEX IF NOT EXISTS ticket_priority_last_activity_at "
                             "ON ticket (priority, last_activity_at)")
