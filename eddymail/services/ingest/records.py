"""What the ingestion pipeline and the fetchers share: outcome and ledger statuses, where a
message came from, the settings of a run, what became of a message.

Apart from ``pipeline`` so that a fetch that finds no new mail (cron, every minute) can read
its ledger without importing the pipeline and what it stores with (tickets, the search index,
notifications): those are imported where a message is handled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from eddymail.db.models import Channel, Department
from eddymail.mail.message.parselimits import ParseLimits

if TYPE_CHECKING:
    from eddymail.mail.message.parse import ParsedMessage
    from eddymail.services.outgoing import staff

NEW_TICKET = "new_ticket"
FOLLOWUP = "followup"
DUPLICATE = "duplicate"
RECORDED = "recorded"  # stored, but opens no ticket (bounce, auto-reply, our own mail)
QUARANTINED = "quarantined"
PENDING = "pending"  # ledger only: chosen for the first fetch, not taken yet
SKIPPED = "skipped"  # ledger only: old mail left alone at the first connection


@dataclass(frozen=True)
class Source:
    """Where a message came from: its key in the ingestion ledger."""

    kind: str  # imap | pop3 | file
    folder: str | None = None
    uidvalidity: int | None = None
    uid: int | None = None
    uidl: str | None = None

    def ledger_key(self, channel: Channel | None) -> dict | None:
        """The ledger columns that identify this exact delivery (None for files)."""
        channel_id = channel.id if channel is not None else None
        if self.kind == "imap":
            return {"channel": channel_id, "folder": self.folder,
                    "uidvalidity": self.uidvalidity, "uid": self.uid}
        if self.kind == "pop3":
            return {"channel": channel_id, "uidl": self.uidl}
        return None


@dataclass
class IngestOptions:
    """Settings of one run, read once rather than per message."""

    notify: bool = True
    limits: ParseLimits = field(default_factory=ParseLimits)
    tag_format: str = ""
    own_addresses: set[str] = field(default_factory=set)
    staff_run: staff.StaffRun | None = None  # None: no staff notifications in this run
    _senders: dict[int, Channel | None] = field(default_factory=dict, repr=False)

    def sender_for(self, department: Department) -> Channel | None:
        """The channel that sends this department's notifications (looked up once per run)."""
        if department.id not in self._senders:
            from eddymail.services.outgoing import notifications

            self._senders[department.id] = notifications.sender_channel(department)
        return self._senders[department.id]

    @classmethod
    def for_run(cls, *, notify: bool = True, max_message_bytes: int | None = None) -> IngestOptions:
        """Options with the team settings of this database."""
        from eddymail.services import settings
        from eddymail.services.outgoing import notifications, staff

        limits = ParseLimits() if max_message_bytes is None else ParseLimits(
            max_message_bytes=max_message_bytes)
        own = notifications.own_addresses()
        return cls(
            notify=notify,
            limits=limits,
            tag_format=settings.get_value(settings.TAG_FORMAT),
            own_addresses=own,
            staff_run=staff.StaffRun(own=own),
        )


@dataclass(frozen=True)
class IngestResult:
    """What became of one message."""

    status: str
    ticket_id: int | None = None
    message_id: int | None = None
    subject: str = ""
    error: str | None = None
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prepared:
    """A message parsed (or found unparseable) before any transaction is opened."""

    raw: bytes
    sha256: str
    parsed: ParsedMessage | None
    error: str | None
