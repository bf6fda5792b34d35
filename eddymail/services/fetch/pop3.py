"""Fetching one POP3 channel (see ``eddymail.services.fetch.run`` for the rules)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from eddymail.crashpoints import crash_point
from eddymail.db.models import Channel, Department, LedgerEntry, utcnow
from eddymail.mail.wire.pop3 import Pop3Client
from eddymail.mail.wire.sasl import BearerToken
from eddymail.services.channels.endpoints import provider_hints_of
from eddymail.services.fetch import start
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
from eddymail.services.ingest import pipeline as ingestion
from eddymail.services.ingest.pipeline import PENDING, SKIPPED, IngestOptions, Source


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
        for done, (number, uidl) in enumerate(todo, start=1):
            deadline.check()
            source = Source("pop3", uidl=uidl)
            size = sizes.get(number, 0)
            oversized = size > settings.max_message_bytes
            if oversized:
                result = ingestion.quarantine_oversized(
                    client.top(number, 0), channel=channel, source=source, size=size,
                    limit=settings.max_message_bytes)
            else:
                raw = client.retrieve(number)
                crash_point("pop3 downloaded")
                result = ingestion.ingest_raw(
                    raw, channel=channel, department=department,
                    source=source,
                    options=first_options if uidl in ledger else options)
            crash_point("pop3 committed")
            report.count(result)
            if delete and not oversized:  # only its headers are ours: the body stays there
                to_delete.append((number, uidl))
            if progress:
                progress(channel.name, done, len(todo))
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
