"""0001_initial: every table of the first schema version.

Frozen on purpose: these classes are this migration's own copy of the schema as it was, not
``eddymail.db.models`` (which moves on with later migrations).
"""

from __future__ import annotations

import peewee as pw


def upgrade(database: pw.Database) -> None:
    """Create the tables of schema version 1."""

    class Base(pw.Model):
        class Meta:
            legacy_table_names = False

    class Department(Base):
        name = pw.CharField(unique=True)
        outgoing_channel = pw.DeferredForeignKey(
            "Channel", null=True, on_delete="SET NULL", backref="outgoing_for"
        )
        created_at = pw.DateTimeField()

    class Channel(Base):
        name = pw.CharField(unique=True)
        department = pw.ForeignKeyField(Department, on_delete="RESTRICT")
        email = pw.CharField()
        display_name = pw.CharField(default="")
        enabled = pw.BooleanField(default=True)
        preset = pw.CharField(null=True)
        protocol = pw.CharField(default="none")
        host = pw.CharField(default="")
        port = pw.IntegerField(null=True)
        security = pw.CharField(default="ssl")
        login = pw.CharField(default="")
        folder = pw.CharField(default="INBOX")
        smtp_host = pw.CharField(default="")
        smtp_port = pw.IntegerField(null=True)
        smtp_security = pw.CharField(default="ssl")
        smtp_login = pw.CharField(default="")
        ca_file = pw.CharField(null=True)
        password_command = pw.TextField(null=True)
        after_fetch = pw.CharField(default="mark_read")
        move_to_folder = pw.CharField(default="")
        unread_only = pw.BooleanField(default=False)
        initial_limit = pw.IntegerField(default=100)
        notify_initial = pw.BooleanField(default=True)
        authserv_id = pw.CharField(default="")
        connected_at = pw.DateTimeField(null=True)
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()

    class ChannelCursor(Base):
        channel = pw.ForeignKeyField(Channel, on_delete="CASCADE")
        folder = pw.CharField()
        uidvalidity = pw.BigIntegerField()
        baseline_uid = pw.BigIntegerField(default=0)
        updated_at = pw.DateTimeField()

        class Meta:
            indexes = ((("channel", "folder"), True),)

    class Setting(Base):
        key = pw.CharField(primary_key=True)
        value = pw.TextField()
        updated_at = pw.DateTimeField()

    class User(Base):
        email = pw.CharField(unique=True)
        name = pw.CharField(default="")
        created_at = pw.DateTimeField()
        registered_by = pw.CharField(default="email")

    class Ticket(Base):
        subject = pw.TextField(default="")
        status = pw.CharField(default="open", index=True)
        department = pw.ForeignKeyField(Department, on_delete="RESTRICT")
        requester = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        requester_address = pw.CharField(default="")
        assignee = pw.CharField(null=True)
        channel = pw.ForeignKeyField(Channel, null=True, on_delete="SET NULL")
        carried_tag = pw.IntegerField(null=True)
        awaiting_reply = pw.BooleanField(default=True)
        message_count = pw.IntegerField(default=0)
        created_at = pw.DateTimeField()
        last_activity_at = pw.DateTimeField(index=True)

        class Meta:
            indexes = (
                (("status", "last_activity_at"), False),
                (("department", "last_activity_at"), False),
            )

    class TicketParticipant(Base):
        ticket = pw.ForeignKeyField(Ticket, on_delete="CASCADE")
        user = pw.ForeignKeyField(User, on_delete="CASCADE")
        role = pw.CharField(default="cc")

        class Meta:
            indexes = ((("ticket", "user"), True),)

    class RawMessage(Base):
        sha256 = pw.CharField(unique=True)
        size = pw.BigIntegerField()
        data = pw.BlobField()
        headers_only = pw.BooleanField(default=False)
        created_at = pw.DateTimeField()

    class Message(Base):
        ticket = pw.ForeignKeyField(Ticket, null=True, on_delete="CASCADE")
        direction = pw.CharField()
        channel = pw.ForeignKeyField(Channel, null=True, on_delete="SET NULL")
        user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        author_name = pw.CharField(default="")
        from_address = pw.CharField(default="")
        from_name = pw.CharField(default="")
        to = pw.TextField(default="[]")
        cc = pw.TextField(default="[]")
        reply_to = pw.TextField(default="[]")
        subject = pw.TextField(default="")
        body_text = pw.TextField(default="")
        has_html = pw.BooleanField(default=False)
        sent_at = pw.DateTimeField(null=True)
        message_id = pw.CharField(null=True, index=True)
        in_reply_to = pw.TextField(default="[]")
        references = pw.TextField(default="[]")
        raw = pw.ForeignKeyField(RawMessage, null=True, on_delete="SET NULL")  # type: ignore[assignment]
        automatic = pw.CharField(null=True)
        auth_status = pw.CharField(null=True)
        created_at = pw.DateTimeField()

        class Meta:
            indexes = ((("ticket", "created_at"), False),)

    class Attachment(Base):
        message = pw.ForeignKeyField(Message, on_delete="CASCADE")
        filename = pw.CharField()
        original_filename = pw.TextField(default="")
        content_type = pw.CharField(default="application/octet-stream")
        size = pw.BigIntegerField(default=0)
        sha256 = pw.CharField(default="")
        content_id = pw.CharField(null=True)
        inline = pw.BooleanField(default=False)
        data = pw.BlobField()

    class LedgerEntry(Base):
        channel = pw.ForeignKeyField(Channel, null=True, on_delete="CASCADE")
        source = pw.CharField()
        folder = pw.CharField(null=True)
        uidvalidity = pw.BigIntegerField(null=True)
        uid = pw.BigIntegerField(null=True)
        uidl = pw.CharField(null=True)
        sha256 = pw.CharField(index=True)
        size = pw.BigIntegerField(default=0)
        message_id = pw.CharField(null=True, index=True)
        status = pw.CharField()
        error = pw.TextField(null=True)
        ticket_message = pw.ForeignKeyField(Message, null=True, on_delete="SET NULL")
        raw = pw.ForeignKeyField(RawMessage, null=True, on_delete="SET NULL")  # type: ignore[assignment]
        server_done = pw.BooleanField(default=False)
        created_at = pw.DateTimeField()
        updated_at = pw.DateTimeField()

        class Meta:
            indexes = (
                (("channel", "folder", "uidvalidity", "uid"), True),
                (("channel", "uidl"), True),
                (("status",), False),
            )

    class OutboxItem(Base):
        kind = pw.CharField()
        template = pw.CharField(null=True)
        channel = pw.ForeignKeyField(Channel, null=True, on_delete="SET NULL")
        ticket = pw.ForeignKeyField(Ticket, null=True, on_delete="SET NULL")
        ticket_message = pw.ForeignKeyField(Message, null=True, on_delete="SET NULL")
        mail_from = pw.CharField()
        recipients = pw.TextField(default="[]")
        recipient = pw.CharField(default="")
        raw = pw.BlobField()  # type: ignore[assignment]
        message_id = pw.CharField(default="")
        automatic = pw.BooleanField(default=False)
        status = pw.CharField(default="queued")
        attempts = pw.IntegerField(default=0)
        next_attempt_at = pw.DateTimeField()
        last_error = pw.TextField(null=True)
        created_at = pw.DateTimeField()
        sent_at = pw.DateTimeField(null=True)

        class Meta:
            indexes = (
                (("status", "next_attempt_at"), False),
                (("recipient", "created_at"), False),
            )

    class Template(Base):
        name = pw.CharField()
        language = pw.CharField()
        source = pw.TextField(null=True)
        enabled = pw.BooleanField(default=True)
        updated_at = pw.DateTimeField()

        class Meta:
            indexes = ((("name", "language"), True),)

    class ErrorLogEntry(Base):
        created_at = pw.DateTimeField(index=True)
        channel = pw.ForeignKeyField(Channel, null=True, on_delete="SET NULL")
        channel_name = pw.CharField(default="")
        operation = pw.CharField()
        message = pw.TextField(default="")
        answer = pw.TextField(default="")
        hint = pw.TextField(default="")

    tables = [
        Department,
        Channel,
        ChannelCursor,
        Setting,
        User,
        Ticket,
        TicketParticipant,
        RawMessage,
        Message,
        Attachment,
        LedgerEntry,
        OutboxItem,
        Template,
        ErrorLogEntry,
    ]
    with database.bind_ctx(tables):
        database.create_tables(tables)
