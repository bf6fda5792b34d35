"""What one fetch run keeps track of: its settings, its deadline, each channel's report.

Shared by the IMAP and POP3 fetchers (``fetch_imap``, ``fetch_pop3``) and the run itself
(``fetching``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eddymail.config import Config
from eddymail.db.models import Channel, utcnow
from eddymail.errors import MailServerError
from eddymail.mail.wire.endpoint import Endpoint
from eddymail.services.channels.endpoints import incoming_endpoint
from eddymail.services.channels.firstimport import FirstImport, parse_initial
from eddymail.services.ingest import records
from eddymail.services.ingest.records import IngestOptions

Progress = Callable[[str, int, int], None]  # channel name, done, total


@dataclass
class ChannelFetchReport:
    """What one channel's fetch did (the ``--json`` document has one per channel)."""

    name: str
    ok: bool = True
    fetched: int = 0
    new_tickets: int = 0
    followups: int = 0
    duplicates: int = 0
    recorded: int = 0
    quarantined: int = 0
    would_fetch: int | None = None  # --dry-run only
    first_connection: bool = False
    busy: bool = False  # another run was fetching this channel: skipped, not failed
    notices: list[str] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None

    def count(self, result: records.IngestResult) -> None:
        """Add one message's outcome."""
        self.fetched += 1
        attribute = {
            records.NEW_TICKET: "new_tickets", records.FOLLOWUP: "followups",
            records.DUPLICATE: "duplicates", records.RECORDED: "recorded",
            records.QUARANTINED: "quarantined",
        }[result.status]
        setattr(self, attribute, getattr(self, attribute) + 1)
        self.notices.extend(result.notices)


@dataclass(frozen=True)
class FetchSettings:
    """How one fetch run behaves."""

    timeout: float = 30.0
    deadline: float = 900.0
    batch_size: int = 50
    max_message_bytes: int = 50 * 1024 * 1024
    # --initial for channels whose starting point this run records (not at channel add)
    initial: str | None = None
    notify: bool = True
    dry_run: bool = False
    jobs: int = 1  # channels fetched at the same time

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> FetchSettings:
        """The settings the configuration gives, with this run's options over them."""
        values: dict[str, Any] = {
            "timeout": float(config.get("network", "timeout")),
            "deadline": float(config.get("fetch", "deadline")),
            "batch_size": int(config.get("fetch", "batch_size")),
            "max_message_bytes": int(config.get("fetch", "max_message_bytes")),
            "jobs": int(config.get("fetch", "jobs")),
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)


class Deadline:
    """The overall time budget of a run, so a slow server never holds cron forever.

    ``stop()`` ends it early (``watch`` on SIGTERM): the batch in hand is finished and
    committed, nothing after it is started.
    """

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds
        self.stopped = False

    def stop(self) -> None:
        """Make the time up now (the fetch stops at its next check)."""
        self.stopped = True

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return 0.0 if self.stopped else max(0.0, self.ends - time.monotonic())

    def endpoint(self, channel: Channel, timeout: float) -> Endpoint:
        """The channel's incoming server, each step bounded by ``timeout`` and the session
        by what is left of the run."""
        endpoint = incoming_endpoint(channel, min(timeout, max(self.remaining(), 1)))
        return dataclasses.replace(endpoint, deadline=self.ends)

    def check(self) -> None:
        """Raise when the run is out of time."""
        if self.remaining() <= 0:
            raise MailServerError(
                "The fetch run reached its deadline; the rest is taken next run.",
                operation="fetch", answer="deadline reached",
                hint="Raise [fetch] deadline in the configuration if runs are often this long.",
            )


def response_limit(settings: FetchSettings) -> int:
    """The most bytes one server answer may have: far more than any message we take.

    Mail between the size limit and this is read and then quarantined with its bytes (a
    server's RFC822.SIZE or LIST may count line ends differently); anything larger is a
    server that lies or attacks, and is refused before it is read.
    """
    return max(2 * settings.max_message_bytes, settings.max_message_bytes + 1024 * 1024)


def first_import(channel: Channel, initial: str | None = None) -> FirstImport:
    """What the first connection takes: ``initial`` (``fetch --initial``), else the channel's
    own choice."""
    if initial:
        return parse_initial(initial)
    return FirstImport(channel.initial_limit, channel.initial_since)


def mark_connected(channel: Channel) -> None:
    """Note the channel's first successful fetch."""
    channel.connected_at = utcnow()
    Channel.update(connected_at=channel.connected_at).where(Channel.id == channel.id).execute()


def initial_options(options: IngestOptions, channel: Channel) -> IngestOptions:
    """The options for a channel's first-connection batch: notify only if the channel wants."""
    return dataclasses.replace(options, notify=options.notify and channel.notify_initial)
