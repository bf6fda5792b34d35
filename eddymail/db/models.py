"""Peewee models: the current shape of the schema.

The tables are created and changed only by the named migrations in ``eddymail.db.migrations``;
these classes describe the result, and a test checks that the two agree. Times are naive UTC
(``utcnow``). Secrets are never stored here: a channel's password lives in the keyring or
comes from its ``password_command``.

A column named ``raw`` hides peewee's ``Model.raw`` (a raw SQL query), which is never called
on these models; the type checker is told so where they are declared.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import peewee

from eddymail.db.connection import database_proxy


def utcnow() -> datetime:
    """The current time as naive UTC, the form every timestamp column stores."""
    return datetime.now(UTC).replace(tzinfo=None)


class JSONField(peewee.TextField):
    """A JSON document in a text column (lists of addresses, argv, setting values)."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False)

    def python_value(self, value: str | None) -> Any:
        if value == "[]":  # most address lists (a thread of 1,000 messages reads 4,000)
            return []
        return None if value is None else json.loads(value)


class BaseModel(peewee.Model):
    """Binds every model to the database proxy.

    The models spell out what peewee would add by itself, for the type checker: the ``id``
    primary key, and the raw key beside each foreign key (``department`` ->
    ``department_id``), which reads the stored number without a query.
    """

    class Meta:
        database = database_proxy
        legacy_table_names = False


class SchemaMigration(BaseModel):
    """A migration that has been applied, by name."""

    name = peewee.CharField(primary_key=True)
    applied_at = peewee.DateTimeField(default=utcnow)


class Department(BaseModel):
    """A team (Support, Accounting) that owns tickets and sends replies from one channel."""

    id = peewee.AutoField()
    outgoing_channel_id: int | None  # see BaseModel
    name = peewee.CharField(unique=True)
    # The mailbox replies are sent from. Deferred because channels also point at departments;
    # SQLite cannot add the constraint later, so the service layer keeps it consistent.
    outgoing_channel = peewee.DeferredForeignKey(
        "Channel", null=True, on_delete="SET NULL", backref="outgoing_for"
    )
    created_at = peewee.DateTimeField(default=utcnow)


class Channel(BaseModel):
    """A mailbox attached to a department: incoming (IMAP/POP3) and outgoing (SMTP) settings."""

    id = peewee.AutoField()
    department_id: int  # see BaseModel
    name = peewee.CharField(unique=True)
    department = peewee.ForeignKeyField(Department, backref="channels", on_delete="RESTRICT")
    email = peewee.CharField()
    display_name = peewee.CharField(default="")
    enabled = peewee.BooleanField(default=True)
    preset = peewee.CharField(null=True)

    protocol = peewee.CharField(default="none")  # imap | pop3 | none
    host = peewee.CharField(default="")
    port = peewee.IntegerField(null=True)
    security = peewee.CharField(default="ssl")  # ssl | starttls | none
    login = peewee.CharField(default="")
    folder = peewee.CharField(default="INBOX")

    smtp_host = peewee.CharField(default="")
    smtp_port = peewee.IntegerField(null=True)
    smtp_security = peewee.CharField(default="ssl")
    smtp_login = peewee.CharField(default="")  # empty: the incoming login

    ca_file = peewee.CharField(null=True)
    password_command = JSONField(null=True)  # argv list, run without a shell

    # Sign-in: "password", or "oauth2" with a bearer token (its secrets are in the keyring).
    auth_method = peewee.TextField(default="password")
    oauth_client_id = peewee.TextField(default="")  # empty: the config file's, per provider
    oauth_tenant = peewee.TextField(default="")  # Microsoft's directory; empty: the default
    oauth_authorize_url = peewee.TextField(default="")  # empty: the preset's
    oauth_token_url = peewee.TextField(default="")
    oauth_device_url = peewee.TextField(default="")
    oauth_scopes = JSONField(null=True)  # list; None: the preset's for the channel's protocols

    # What fetch does; see the ingestion services.
    after_fetch = peewee.CharField(default="mark_read")  # mark_read | keep | move | delete
    move_to_folder = peewee.CharField(default="")
    unread_only = peewee.BooleanField(default=False)
    initial_limit = peewee.IntegerField(default=100)  # -1: all, 0: none
    notify_initial = peewee.BooleanField(default=True)
    authserv_id = peewee.CharField(default="")
    initial_since = peewee.DateField(null=True)  # first import: all mail since this day
    started_at = peewee.DateTimeField(null=True)  # the starting point was recorded (add/fetch)
    connected_at = peewee.DateTimeField(null=True)  # first successful fetch

    # When a fetch of it last began (any run, any host): a run skips a channel whose fetch
    # began after the run did (m0007).
    fetch_started_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)


class ChannelCursor(BaseModel):
    """Where fetching stands in one IMAP folder: its UIDVALIDITY and the first-connection mark."""

    id = peewee.AutoField()
    channel_id: int  # see BaseModel
    channel = peewee.ForeignKeyField(Channel, backref="cursors", on_delete="CASCADE")
    folder = peewee.CharField()
    uidvalidity = peewee.BigIntegerField()
    # UIDs at or below this existed when the channel was first connected; only the initial
    # batch of them was taken, the rest stays untouched forever.
    baseline_uid = peewee.BigIntegerField(default=0)
    # The folder's UIDNEXT when a fetch pass last ended with every message above the
    # baseline in the ledger: while UIDNEXT stays there nothing is new (no SEARCH), and
    # when it moves only UIDs from here on are searched. Cleared by whatever takes a row
    # out of the ledger (``mail forget``) or renumbers the folder.
    quiet_uidnext = peewee.BigIntegerField(null=True)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("channel", "folder"), True),)


class Setting(BaseModel):
    """A team-wide setting (``system-channel``, ``language``, ...), value as JSON."""

    key = peewee.CharField(primary_key=True)
    value = JSONField()
    updated_at = peewee.DateTimeField(default=utcnow)


class User(BaseModel):
    """A customer known by e-mail address (created from an unknown sender)."""

    id = peewee.AutoField()
    email = peewee.CharField(unique=True)  # lower-cased
    name = peewee.CharField(default="")
    created_at = peewee.DateTimeField(default=utcnow)
    registered_by = peewee.CharField(default="email")  # email | staff


class Agent(BaseModel):
    """A member of staff who works tickets: replies signed by, assigned to, notified."""

    id = peewee.AutoField()
    handle = peewee.CharField(unique=True)  # short, typed in --as and ticket assign
    name = peewee.CharField(default="")
    email = peewee.CharField(default="")  # where staff notifications go; empty: none
    signature = peewee.TextField(default="")
    notify_new_tickets = peewee.BooleanField(default=True)
    notify_replies = peewee.BooleanField(default=True)
    notify_assigned = peewee.BooleanField(default=True)
    delivery = peewee.CharField(default="immediate")  # immediate | digest
    digest_minutes = peewee.IntegerField(default=60)
    last_digest_at = peewee.DateTimeField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)


class AgentDepartment(BaseModel):
    """An agent works (and hears of) the tickets of this department."""

    id = peewee.AutoField()
    agent_id: int  # see BaseModel
    department_id: int  # see BaseModel
    agent = peewee.ForeignKeyField(Agent, backref="memberships", on_delete="CASCADE")
    department = peewee.ForeignKeyField(Department, backref="memberships", on_delete="CASCADE")

    class Meta:
        indexes = ((("agent", "department"), True),)


class Ticket(BaseModel):
    """A conversation with a customer, owned by a department."""

    id = peewee.AutoField()
    department_id: int  # see BaseModel
    requester_id: int | None  # see BaseModel
    assignee_id: int | None  # see BaseModel
    channel_id: int | None  # see BaseModel
    merged_into_id: int | None  # see BaseModel
    subject = peewee.TextField(default="")
    status = peewee.CharField(default="open", index=True)  # open | pending | closed
    department = peewee.ForeignKeyField(Department, backref="tickets", on_delete="RESTRICT")
    requester = peewee.ForeignKeyField(User, null=True, backref="tickets", on_delete="SET NULL")
    requester_address = peewee.CharField(default="")  # as sent, also for unidentified senders
    assignee = peewee.ForeignKeyField(Agent, null=True, backref="assigned",
                                      on_delete="SET NULL")
    channel = peewee.ForeignKeyField(Channel, null=True, backref="tickets", on_delete="SET NULL")
    carried_tag = peewee.IntegerField(
        null=True
    )  # a ticket tag the first mail carried but could not join
    awaiting_reply = peewee.BooleanField(default=True)  # the last message is from the customer
    message_count = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)
    last_activity_at = peewee.DateTimeField(default=utcnow, index=True)
    priority = peewee.CharField(default="normal")  # low | normal | high | urgent
    # The ticket this one was merged into: its messages, people and history went there.
    merged_into = peewee.ForeignKeyField("self", null=True, backref="merged",
                                         on_delete="SET NULL")

    class Meta:
        # Partial indexes over the active tickets and the requester one come from migration
        # 0002 (peewee's Meta cannot spell a WHERE clause), the assignee one from 0005, the
        # priority one from 0009.
        indexes = (
            (("status", "last_activity_at"), False),
            (("department", "last_activity_at"), False),
        )


class TicketTag(BaseModel):
    """One tag of a ticket (lower-case, no spaces): ``billing``, ``vip``, ``spam``."""

    id = peewee.AutoField()
    ticket_id: int  # see BaseModel
    ticket = peewee.ForeignKeyField(Ticket, backref="tags", on_delete="CASCADE")
    name = peewee.CharField()
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("ticket", "name"), True), (("name", "ticket"), False))


class Snippet(BaseModel):
    """A canned reply, inserted by name into a reply (``ticket reply --snippet``)."""

    id = peewee.AutoField()
    name = peewee.CharField(unique=True)
    body = peewee.TextField(default="")
    created_by = peewee.CharField(default="")  # the agent's handle, or empty
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)


class TicketParticipant(BaseModel):
    """Someone besides the requester who takes part in a ticket (Cc)."""

    id = peewee.AutoField()
    ticket_id: int  # see BaseModel
    user_id: int  # see BaseModel
    ticket = peewee.ForeignKeyField(Ticket, backref="participants", on_delete="CASCADE")
    user = peewee.ForeignKeyField(User, backref="participations", on_delete="CASCADE")
    role = peewee.CharField(default="cc")

    class Meta:
        indexes = ((("ticket", "user"), True),)


class RawMessage(BaseModel):
    """The bytes of a message exactly as received, so it can always be parsed again."""

    id = peewee.AutoField()
    sha256 = peewee.CharField(unique=True)
    size = peewee.BigIntegerField()
    headers_only = peewee.BooleanField(default=False)  # oversized mail: only its header kept
    created_at = peewee.DateTimeField(default=utcnow)
    # Last, as in the SQLite table since m0011: written in place (db/blobs.py).
    data = peewee.BlobField()


class Message(BaseModel):
    """One entry of a ticket's thread: inbound mail, a reply, an internal note, a system event."""

    id = peewee.AutoField()
    ticket_id: int | None  # see BaseModel
    channel_id: int | None  # see BaseModel
    user_id: int | None  # see BaseModel
    raw_id: int | None  # see BaseModel
    ticket = peewee.ForeignKeyField(Ticket, null=True, backref="messages", on_delete="CASCADE")
    direction = peewee.CharField()  # in | out | note | system
    channel = peewee.ForeignKeyField(Channel, null=True, on_delete="SET NULL")
    user = peewee.ForeignKeyField(User, null=True, on_delete="SET NULL")
    author_name = peewee.CharField(default="")
    from_address = peewee.CharField(default="")
    from_name = peewee.CharField(default="")
    to = JSONField(default=list)
    cc = JSONField(default=list)
    bcc = JSONField(default=list)  # staff replies only; never shown to the customer
    reply_to = JSONField(default=list)
    subject = peewee.TextField(default="")
    body_text = peewee.TextField(default="")
    has_html = peewee.BooleanField(default=False)
    sent_at = peewee.DateTimeField(null=True)  # the Date header
    message_id = peewee.CharField(null=True, index=True)
    in_reply_to = JSONField(default=list)
    references = JSONField(default=list)
    raw = peewee.ForeignKeyField(RawMessage, null=True, on_delete="SET NULL")  # type: ignore[assignment]
    automatic = peewee.CharField(null=True)  # auto_reply | bounce | mailing_list | own
    auth_status = peewee.CharField(null=True)  # pass | fail | none (sender verification)
    # Another, different message already came with this Message-ID (see m0006).
    message_id_reused = peewee.BooleanField(default=False)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("ticket", "created_at"), False),)


class Attachment(BaseModel):
    """A file that came with (or was sent with) a message. The name is never used as a path."""

    id = peewee.AutoField()
    message_id: int  # see BaseModel
    message = peewee.ForeignKeyField(Message, backref="attachments", on_delete="CASCADE")
    filename = peewee.CharField()  # sanitised display name
    original_filename = peewee.TextField(default="")
    content_type = peewee.CharField(default="application/octet-stream")
    size = peewee.BigIntegerField(default=0)
    sha256 = peewee.CharField(default="")
    content_id = peewee.CharField(null=True)
    inline = peewee.BooleanField(default=False)
    data = peewee.BlobField()


class TicketEvent(BaseModel):
    """One step of a ticket's history: who (an agent, or the customer) did what."""

    id = peewee.AutoField()
    ticket_id: int  # see BaseModel
    agent_id: int | None  # see BaseModel
    message_id: int | None  # see BaseModel
    ticket = peewee.ForeignKeyField(Ticket, backref="events", on_delete="CASCADE")
    agent = peewee.ForeignKeyField(Agent, null=True, on_delete="SET NULL")
    actor = peewee.CharField(default="")  # the agent's handle at the time, kept after removal
    action = peewee.CharField()  # reply | note | close | reopen | move | assign | unassign ...
    detail = JSONField(default=dict)
    message = peewee.ForeignKeyField(Message, null=True, on_delete="SET NULL")
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("ticket", "created_at"), False),)


class StaffNotice(BaseModel):
    """A staff notification kept for an agent's next digest instead of being mailed at once."""

    id = peewee.AutoField()
    agent_id: int  # see BaseModel
    ticket_id: int  # see BaseModel
    message_id: int | None  # see BaseModel
    agent = peewee.ForeignKeyField(Agent, backref="notices", on_delete="CASCADE")
    ticket = peewee.ForeignKeyField(Ticket, on_delete="CASCADE")
    message = peewee.ForeignKeyField(Message, null=True, on_delete="SET NULL")
    kind = peewee.CharField()  # new_ticket | customer_reply | assigned
    created_at = peewee.DateTimeField(default=utcnow)
    digested_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = ((("agent", "digested_at"), False),)


class LedgerEntry(BaseModel):
    """The ingestion ledger: every message ever seen on a channel, so none is taken twice.

    IMAP mail is known by (channel, folder, uidvalidity, uid), POP3 mail by (channel, uidl),
    files piped to ``ingest`` by their SHA-256. Message-ID is only a threading hint.
    """

    id = peewee.AutoField()
    channel_id: int | None  # see BaseModel
    ticket_message_id: int | None  # see BaseModel
    raw_id: int | None  # see BaseModel
    channel = peewee.ForeignKeyField(Channel, null=True, backref="ledger", on_delete="CASCADE")
    source = peewee.CharField()  # imap | pop3 | file
    folder = peewee.CharField(null=True)
    uidvalidity = peewee.BigIntegerField(null=True)
    uid = peewee.BigIntegerField(null=True)
    uidl = peewee.CharField(null=True)
    sha256 = peewee.CharField(index=True)
    size = peewee.BigIntegerField(default=0)
    message_id = peewee.CharField(null=True, index=True)
    status = peewee.CharField()  # imported | duplicate | quarantined | skipped
    error = peewee.TextField(null=True)
    ticket_message = peewee.ForeignKeyField(Message, null=True, on_delete="SET NULL")
    raw = peewee.ForeignKeyField(RawMessage, null=True, on_delete="SET NULL")  # type: ignore[assignment]
    server_done = peewee.BooleanField(default=False)  # the after-fetch action was applied
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = (
            (("channel", "folder", "uidvalidity", "uid"), True),
            (("channel", "uidl"), True),
            (("status",), False),
        )


class OutboxItem(BaseModel):
    """An outgoing mail waiting to be sent (or sent): replies, notifications, test letters."""

    id = peewee.AutoField()
    channel_id: int | None  # see BaseModel
    ticket_id: int | None  # see BaseModel
    ticket_message_id: int | None  # see BaseModel
    kind = peewee.CharField()  # reply | notification | test_letter
    template = peewee.CharField(null=True)
    channel = peewee.ForeignKeyField(Channel, null=True, on_delete="SET NULL")
    ticket = peewee.ForeignKeyField(Ticket, null=True, on_delete="SET NULL")
    ticket_message = peewee.ForeignKeyField(Message, null=True, on_delete="SET NULL")
    mail_from = peewee.CharField()
    recipients = JSONField(default=list)
    recipient = peewee.CharField(default="")  # the first recipient, lower-cased: daily caps
    raw = peewee.BlobField()  # type: ignore[assignment]
    message_id = peewee.CharField(default="")
    automatic = peewee.BooleanField(default=False)
    status = peewee.CharField(default="queued")  # queued | sent | failed
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DateTimeField(default=utcnow)
    last_error = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    sent_at = peewee.DateTimeField(null=True)
    # Set just before SMTP DATA: after a crash, the mail may have gone out (see m0006).
    data_started_at = peewee.DateTimeField(null=True)

    class Meta:
        indexes = (
            (("status", "next_attempt_at"), False),
            (("recipient", "created_at"), False),
            (("message_id",), False),  # threading: replies name our mail (m0013)
        )


class Template(BaseModel):
    """A notification template staff edited or switched off (defaults ship with the code)."""

    id = peewee.AutoField()
    name = peewee.CharField()
    language = peewee.CharField()
    source = peewee.TextField(null=True)  # None: the shipped default
    enabled = peewee.BooleanField(default=True)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("name", "language"), True),)


class ErrorLogEntry(BaseModel):
    """What a mail server answered when an operation failed, with the likely cause."""

    id = peewee.AutoField()
    channel_id: int | None  # see BaseModel
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    channel = peewee.ForeignKeyField(Channel, null=True, on_delete="SET NULL")
    channel_name = peewee.CharField(default="")  # kept when the channel is removed
    operation = peewee.CharField()
    message = peewee.TextField(default="")
    answer = peewee.TextField(default="")
    hint = peewee.TextField(default="")


ALL_MODELS: tuple[type[BaseModel], ...] = (
    SchemaMigration,
    Department,
    Channel,
    ChannelCursor,
    Setting,
    User,
    Agent,
    AgentDepartment,
    Ticket,
    TicketTag,
    Snippet,
    TicketParticipant,
    RawMessage,
    Message,
    Attachment,
    TicketEvent,
    StaffNotice,
    LedgerEntry,
    OutboxItem,
    Template,
    ErrorLogEntry,
)
