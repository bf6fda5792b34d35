"""0005_support_desk: agents, assignment to agents, a ticket history, staff notifications.

- ``agent`` and ``agent_department``: the people who work the tickets, their address,
  signature, departments and how they want to hear of new mail;
- ``ticket.assignee_id`` replaces the free-text ``ticket.assignee``. Every distinct free-text
  assignee becomes an agent (no address yet: ``agent edit`` adds it), so no assignment is
  lost and ``ticket list --assignee`` keeps finding the same tickets;
- ``ticket_event``: who did what to a ticket (reply, note, close, assign, ...);
- ``staff_notice``: staff notifications waiting for an agent's digest;
- ``message.bcc``: the blind copies of a staff reply (kept for the record, never shown to
  the customer);
- ``channel.initial_since`` and ``channel.started_at``: the first import chosen as a date, and
  when the channel's starting point was recorded (at ``channel add`` or the first fetch).

String columns are ``text`` (see 0003: PostgreSQL enforces ``varchar(255)``).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

import peewee as pw
from playhouse.migrate import PostgresqlMigrator, SqliteMigrator, migrate


def upgrade(database: pw.Database) -> None:
    """Create the desk tables, move free-text assignees onto agents, add the new columns."""
    now = datetime.now(UTC).replace(tzinfo=None)

    class Base(pw.Model):
        class Meta:
            legacy_table_names = False

    class Department(Base):
        name = pw.TextField()

    class Ticket(Base):
        subject = pw.TextField()

    class Message(Base):
        direction = pw.TextField()

    class Agent(Base):
        id = pw.AutoField()
        handle = pw.TextField(unique=True)
        name = pw.TextField(default="")
        email = pw.TextField(default="")
        signature = pw.TextField(default="")
        notify_new_tickets = pw.BooleanField(default=True)
        notify_replies = pw.BooleanField(default=True)
        notify_assigned = pw.BooleanField(default=True)
        delivery = pw.TextField(default="immediate")
        digest_minutes = pw.IntegerField(default=60)
        last_digest_at = pw.DateTimeField(null=True)
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()

    class AgentDepartment(Base):
        agent = pw.ForeignKeyField(Agent, on_delete="CASCADE")
        department = pw.ForeignKeyField(Department, on_delete="CASCADE")

        class Meta:
            indexes = ((("agent", "department"), True),)

    class TicketEvent(Base):
        ticket = pw.ForeignKeyField(Ticket, on_delete="CASCADE")
        agent = pw.ForeignKeyField(Agent, null=True, on_delete="SET NULL")
        actor = pw.TextField(default="")
        action = pw.TextField()
        detail = pw.TextField(default="{}")
        message = pw.ForeignKeyField(Message, null=True, on_delete="SET NULL")
        created_at = pw.DateTimeField()

        class Meta:
            indexes = ((("ticket", "created_at"), False),)

    class StaffNotice(Base):
        agent = pw.ForeignKeyField(Agent, on_delete="CASCADE")
        ticket = pw.ForeignKeyField(Ticket, on_delete="CASCADE")
        message = pw.ForeignKeyField(Message, null=True, on_delete="SET NULL")
        kind = pw.TextField()
        created_at = pw.DateTimeField()
        digested_at = pw.DateTimeField(null=True)

        class Meta:
            indexes = ((("agent", "digested_at"), False),)

    tables = [Agent, AgentDepartment, TicketEvent, StaffNotice]
    with database.bind_ctx([Department, Ticket, Message, *tables]):
        database.create_tables(tables)
        migrator = (SqliteMigrator(database) if isinstance(database, pw.SqliteDatabase)
                    else PostgresqlMigrator(database))
        migrate(
            migrator.add_column("ticket", "assignee_id", pw.ForeignKeyField(
                Agent, null=True, on_delete="SET NULL", field=Agent.id)),
            migrator.add_column("message", "bcc", pw.TextField(default="[]")),
            migrator.add_column("channel", "initial_since", pw.DateField(null=True)),
            migrator.add_column("channel", "started_at", pw.DateTimeField(null=True)),
        )
        _assignees_to_agents(database, Agent, now)
        database.execute_sql("DROP INDEX IF EXISTS ticket_assignee_last_activity_at")
        migrate(migrator.drop_column("ticket", "assignee"))
        database.execute_sql("CREATE INDEX IF NOT EXISTS ticket_assignee_id_last_activity_at "
                             "ON ticket (assignee_id, last_activity_at)")
        # A channel that was fetched had its starting point taken then.
        database.execute_sql("UPDATE channel SET started_at = connected_at")


def _assignees_to_agents(database: pw.Database, agent: type[pw.Model], now: datetime) -> None:
    names = [row[0] for row in database.execute_sql(
        "SELECT DISTINCT assignee FROM ticket WHERE assignee IS NOT NULL AND assignee != ''")]
    taken: set[str] = set()
    for name in sorted(names):
        handle = _unique(handle_for(name), taken)
        created = agent.create(handle=handle, name=" ".join(name.split()), created_at=now,
                               updated_at=now)
        database.execute_sql("UPDATE ticket SET assignee_id = %s WHERE assignee = %s"
                             .replace("%s", database.param), (created.get_id(), name))


def handle_for(name: str) -> str:
    """A handle from a free-text name: "Anna Petrova" -> "anna.petrova" (any script kept)."""
    text = unicodedata.normalize("NFKC", name).casefold()
    text = re.sub(r"[^\w.-]+", ".", text, flags=re.UNICODE).strip(".-_")
    return text[:64] or "agent"


def _unique(handle: str, taken: set[str]) -> str:
    candidate, number = handle, 1
    while candidate in taken:
        number += 1
        candidate = f"{handle[:60]}-{number}"
    taken.add(candidate)
    return candidate
