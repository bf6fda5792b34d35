"""Fetching one POP3 channel (see ``eddymail.services.fetch.run`` for the rules)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import cast

from eddymail.crashpoints import crash_point
from eddymail.db.models import Channel, Department, LedgerEntry, utcnow
from eddymail.mail.wire.pop3 import Pop3Client
from eddymail.mail.wire.sasl import BearerToken
from eddymail.services.channels.endpoints import provider_hints_of
from eddymail.services.fetch import start
from eddymail.services.fetch.ahead import Ahead
from eddymail.services.fetch.batch import CrashPoints, batches, store_batch
from eddymail.services.fetch.state import (
    ChannelFetchReport,
    Deadline,
    FetchSettings,
    Progress,
    first_import,
    initial_options,
    mark_connected,
    response_limit,
)
from eddymail.services.ingest.records import (
    PENDING,
    SKIPPED,
    IngestOptions,
    IngestResult,
    Prepared,
    Source,
)


def fetch_pop3(channel: Channel, credential: str | BearerToken, settings: FetchSettings,
                report: ChannelFetchReport, deadline: Deadline,
                progress: Progress | None) -> None:
    endpoint = deadline.endpoint(channel, settings.timeout)
    department = Department.get_by_id(channel.department_id)
    options = IngestOptions.for_run(notify=settings.notify,
                                    max_message_bytes=settings.max_message_bytes)
    delete = channel.after_fetch == "delete"
    with Pop3Client(endpoint, credential, provider_hints_of(channel),
                    max_response=response_limit(settings)) as client:
        listing = client.uidl()
        rows = LedgerEntry.select(
            LedgerEntry.uidl, LedgerEntry.status, LedgerEntry.server_done).where(
            (LedgerEntry.channel == channel) & (LedgerEntry.source == "pop3")).tuples()
        # peewee's stubs type .tuples() rows as models, hence the cast
        ledger = {uidl: (status, done) for uidl, status, done
                  in cast(Iterable[tuple[str, str, bool]], rows)}
        report.first_connection = channel.connected_at is None
        if channel.started_at is None:
            chosen = start.pop3_initial(listing, first_import(channel, settings.initial))
            if settings.dry_run:
                report.would_fetch = len(chosen)
                return
            ledger = start.record_pop3(channel, listing, chosen)
            crash_point("pop3 connected")
        elif settings.initial and report.first_connection:
            report.notices.append("--initial not used: the first import was chosen when the "
                                  "channel was added")
        todo = [(number, uidl) for number, uidl in listing
                if uidl not in ledger or ledger[uidl][0] == PENDING]
        if settings.dry_run:
            report.would_fetch = len(todo)
            return
        if channel.connected_at is None:
            mark_connected(channel)
        first_options = initial_options(options, channel)
        sizes = client.sizes() if todo else {}
        to_delete: list[tuple[int, str]] = []
        deleted_before: list[str] = []
        if delete:  # deletions an interrupted run stored but the server never committed
            to_delete = [(number, uidl) for number, uidl in listing
                         if uidl in ledger and ledger[uidl][0] not in (PENDING, SKIPPED)
                         and not ledger[uidl][1]]
            # ... or committed (QUIT went through) just before the run was cut off, so the
            # ledger never heard of it: those are gone from the listing.
            listed = {uidl for _, uidl in listing}
            deleted_before = [uidl for uidl, (status, done) in ledger.items()
                              if status not in (PENDING, SKIPPED) and not done
                              and uidl not in listed]
        take = _Take(client, channel, department, settings, report, deadline, progress,
                     sizes, len(todo))
        take.oversized([(number, uidl) for number, uidl in todo
                        if sizes.get(number, 0) > settings.max_message_bytes])
        wanted = [(number, uidl) for number, uidl in todo
                  if sizes.get(number, 0) <= settings.max_message_bytes]
        taken = take.in_batches(wanted, lambda uidl: first_options if uidl in ledger
                                else options)
        if delete:  # an oversized one is not: only its headers are ours, the body stays there
            to_delete += taken
        for number, _ in to_delete:
            client.delete(number)
            crash_point("pop3 dele sent")
        client.quit()  # DELE takes effect only now
        crash_point("pop3 quit")
        finished = [uidl for _, uidl in to_delete] + deleted_before
        if finished:
            LedgerEntry.update(server_done=True, updated_at=utcnow()).where(
                (LedgerEntry.channel == channel) & (LedgerEntry.source == "pop3")
                & LedgerEntry.uidl.in_(finished)).execute()
    if take.refused:  # the rest is stored and deleted: now the channel's failure (batch.py)
        raise take.refused[0][1]


_STEPS = CrashPoints(downloaded="pop3 downloaded", committed="pop3 committed")


class _Take:
    """Taking the new messages of one POP3 session: the oversized ones by their headers,
    the others in batches, the next batch downloading while this one is stored."""

    def __init__(self, client: Pop3Client, channel: Channel, department: Department,
                 settings: FetchSettings, report: ChannelFetchReport, deadline: Deadline,
                 progress: Progress | None, sizes: dict[int, int], total: int) -> None:
        self.client = client
        self.channel = channel
        self.department = department
        self.settings = settings
        self.report = report
        self.deadline = deadline
        self.progress = progress
        self.sizes = sizes  # by message number (LIST)
        self.total = total
        self.done = 0
        self.refused: list[tuple[tuple[int, str], Exception]] = []

    def _counted(self, result: IngestResult) -> None:
        self.report.count(result)
        self.done += 1
        if self.progress:
            self.progress(self.channel.name, self.done, self.total)

    def oversized(self, messages: list[tuple[int, str]]) -> None:
        """Quarantine messages over the size limit with their headers (TOP n 0) alone."""
        from eddymail.services.ingest import pipeline as ingestion  # a message to store

        for number, uidl in messages:
            self.deadline.check()
            self._counted(ingestion.quarantine_oversized(
                self.client.top(number, 0), channel=self.channel,
                source=Source("pop3", uidl=uidl), size=self.sizes[number],
                limit=self.settings.max_message_bytes))

    def in_batches(self, messages: list[tuple[int, str]],
                   options_for: Callable[[str], IngestOptions]) -> list[tuple[int, str]]:
        """Download, store and commit ``messages`` a batch at a time; those committed."""
        taken: list[tuple[int, str]] = []
        downloads = batches(messages, {key: self.sizes.get(key[0], 0) for key in messages},
                            self.settings.batch_size)
        ahead: Ahead[list[tuple[tuple[int, str], bytes]]] | None = None
        for index, batch in enumerate(downloads):
            if ahead is None:
                self.deadline.check()
                ahead = self._download(batch)
            arrived = ahead.result()
            # The next batch downloads while this one is parsed and stored; the session is
            # used again (next download, DELE) only once it has arrived.
            ahead = None
            if index + 1 < len(downloads) and self.deadline.remaining() > 0:
                ahead = self._download(downloads[index + 1])
            try:
                stored = store_batch(arrived, lambda key: options_for(key[1]), self._ingest,
                                     _STEPS)
            finally:
                if ahead is not None:
                    ahead.wait()
            for result in stored.results:
                self._counted(result)
            taken += stored.taken
            self.refused += stored.refused
            if ahead is not None and ahead.failed:
                ahead.result()  # this batch is stored: the next run takes the rest
        return taken

    def _download(self, batch: list[tuple[int, str]]
                  ) -> Ahead[list[tuple[tuple[int, str], bytes]]]:
        """Start retrieving ``batch`` (RETR each) in the background."""
        return Ahead(lambda: [(key, self.client.retrieve(key[0])) for key in batch])

    def _ingest(self, key: tuple[int, str], message: Prepared,
                options: IngestOptions) -> IngestResult:
        from eddymail.services.ingest import pipeline as ingestion  # a message to store

        return ingestion.ingest_raw(message, channel=self.channel, department=self.department,
                                    source=Source("pop3", uidl=key[1]), options=options)
