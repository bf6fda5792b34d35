"""Fetching one IMAP channel (see ``eddymail.services.fetch.run`` for the rules)."""

from __future__ import annotations

from eddymail.crashpoints import crash_point
from eddymail.db.connection import database_proxy
from eddymail.db.models import Channel, ChannelCursor, Department, LedgerEntry, utcnow
from eddymail.errors import MailServerError
from eddymail.mail.wire.endpoint import Endpoint
from eddymail.mail.wire.imap import ImapClient
from eddymail.mail.wire.sasl import BearerToken
from eddymail.services import errorlog
from eddymail.services.channels.endpoints import provider_hints_of
from eddymail.services.fetch import folderstate, start
from eddymail.services.fetch.ahead import Ahead
from eddymail.services.fetch.batch import CrashPoints, StoredBatch, batches, store_batch
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


def fetch_imap(channel: Channel, password: str | BearerToken, settings: FetchSettings,
               report: ChannelFetchReport, deadline: Deadline,
               progress: Progress | None) -> None:
    """Fetch one IMAP channel over a session of its own."""
    endpoint = deadline.endpoint(channel, settings.timeout)
    with open_session(channel, password, settings, endpoint) as client:
        fetch_imap_session(client, channel, settings, report, deadline, progress)


def open_session(channel: Channel, password: str | BearerToken, settings: FetchSettings,
                 endpoint: Endpoint) -> ImapClient:
    """A logged-in IMAP session for fetching ``channel`` (``watch`` keeps one open)."""
    return ImapClient(endpoint, password, provider_hints_of(channel),
                      max_literal=response_limit(settings))


def fetch_imap_session(client: ImapClient, channel: Channel, settings: FetchSettings,
                       report: ChannelFetchReport, deadline: Deadline,
                       progress: Progress | None) -> None:
    """One fetch pass over an open session: select the folder, take what is new.

    A folder whose UIDNEXT is still the cursor's ``quiet_uidnext`` got nothing since the
    last pass that left nothing behind: no SEARCH is sent (``folderstate.search_from``).
    """
    status = client.select(channel.folder, readonly=settings.dry_run)
    cursor = folderstate.cursor_of(channel)
    report.first_connection = channel.connected_at is None
    if cursor is None:
        report.first_connection = True
        baseline = start.highest_uid(client, status.uidnext)
        initial = start.imap_initial(client, baseline,
                                     first_import(channel, settings.initial))
        if settings.dry_run:
            report.would_fetch = len(initial)
            return
        cursor = start.record_imap(channel, status.uidvalidity, baseline, initial)
        crash_point("imap connected")
    elif settings.initial and report.first_connection:
        report.notices.append("--initial not used: the first import was chosen when the "
                              "channel was added")
    if cursor.uidvalidity != status.uidvalidity:
        cursor = _uidvalidity_changed(client, channel, cursor, status.uidvalidity)
    uidvalidity = status.uidvalidity

    first = folderstate.search_from(cursor, status.uidnext)
    ledger = folderstate.ledger_of(channel, uidvalidity, first)
    _finish_server_actions(client, channel, uidvalidity, ledger.unfinished)
    todo = _imap_todo(client, channel, first, ledger)
    if settings.dry_run:
        report.would_fetch = len(todo)
        return
    if channel.connected_at is None:
        mark_connected(channel)
    if todo:
        department = Department.get_by_id(channel.department_id)
        options = IngestOptions.for_run(notify=settings.notify,
                                        max_message_bytes=settings.max_message_bytes)
        _take_imap(client, channel, department, todo, ledger.pending, uidvalidity, settings,
                   options, report, deadline, progress)
    folderstate.note_quiet(channel, cursor, status.uidnext)


def _uidvalidity_changed(client: ImapClient, channel: Channel, cursor: ChannelCursor,
                         uidvalidity: int) -> ChannelCursor:
    """The server renumbered the folder: keep old mail old and match the rest by content.

    Every UID is new now, so ledger UIDs mean nothing. Mail from the day of the first
    connection on is taken again and recognised by its SHA-256 (a duplicate, not a ticket);
    older mail stays behind the new baseline.
    """
    since = channel.connected_at or cursor.updated_at
    older = client.search_uids(f"BEFORE {since.strftime('%d-%b-%Y')}")
    baseline = max(older) if older else 0
    error = MailServerError(
        f"UIDVALIDITY of {channel.folder} changed from {cursor.uidvalidity} to {uidvalidity}; "
        "mail since the first connection is matched by content, none is imported twice.",
        operation="imap uidvalidity", answer=f"UIDVALIDITY {uidvalidity}",
    )
    errorlog.record_failure(channel=channel, operation="imap uidvalidity", error=error)
    with database_proxy.atomic():
        LedgerEntry.update(status=SKIPPED, error="uidvalidity changed before it was taken").where(
            (LedgerEntry.channel == channel) & (LedgerEntry.folder == channel.folder)
            & (LedgerEntry.uidvalidity == cursor.uidvalidity) & (LedgerEntry.status == PENDING)
        ).execute()
        cursor.uidvalidity = uidvalidity
        cursor.baseline_uid = baseline
        cursor.quiet_uidnext = None
        cursor.updated_at = utcnow()
        cursor.save()
    return cursor


def _imap_todo(client: ImapClient, channel: Channel, first: int | None,
               ledger: folderstate.LedgerView) -> list[int]:
    """UIDs to take now: the pending ones, plus (unless the folder is quiet: ``first`` is
    ``None``) those from ``first`` on that the server has and the ledger does not."""
    if first is None:
        return sorted(ledger.pending)
    criteria = f"UID {first}:*"
    if channel.unread_only:
        criteria += " UNSEEN"
    # "n:*" always matches the highest UID, even one below n: filter on our side.
    fresh = {uid for uid in client.search_uids(criteria) if uid >= first}
    return sorted((fresh - ledger.known) | ledger.pending)


def _take_imap(client: ImapClient, channel: Channel, department: Department, todo: list[int],
               pending: set[int], uidvalidity: int, settings: FetchSettings,
               options: IngestOptions, report: ChannelFetchReport, deadline: Deadline,
               progress: Progress | None) -> None:
    if not todo:
        return
    from eddymail.services.ingest import pipeline as ingestion  # a message to store

    sizes = client.fetch_sizes(todo)
    oversized = [uid for uid in todo if sizes.get(uid, 0) > settings.max_message_bytes]
    wanted = [uid for uid in todo if uid not in oversized and uid in sizes]
    # UIDs the search found but a FETCH answered nothing for: expunged meanwhile, or a
    # server that drops messages from its answers. Checked after the rest is taken.
    left_out = {uid for uid in todo if uid not in sizes}
    first_options = initial_options(options, channel)
    done = 0
    total = len(wanted) + len(oversized)
    oversized_headers = client.fetch_headers(oversized)
    left_out.update(uid for uid in oversized if uid not in oversized_headers)
    for uid, headers in oversized_headers.items():
        result = ingestion.quarantine_oversized(
            headers, channel=channel, source=Source("imap", channel.folder, uidvalidity, uid),
            size=sizes[uid], limit=settings.max_message_bytes)
        report.count(result)
        done += 1

    def options_for(uid: int) -> IngestOptions:
        return first_options if uid in pending else options

    def ingest(uid: int, message: Prepared, message_options: IngestOptions) -> IngestResult:
        return ingestion.ingest_raw(message, channel=channel, department=department,
                                    source=Source("imap", channel.folder, uidvalidity, uid),
                                    options=message_options)

    refused: list[tuple[int, Exception]] = []
    ahead: Ahead[list[tuple[int, bytes]]] | None = None
    downloads = batches(wanted, sizes, settings.batch_size)
    for index, batch in enumerate(downloads):
        if ahead is None:
            deadline.check()
            ahead = _download(client, batch)
        messages = ahead.result()
        # The next batch downloads while this one is parsed and stored; the connection is
        # touched again (after-fetch action, next download) only once it has arrived.
        ahead = None
        if index + 1 < len(downloads) and deadline.remaining() > 0:
            ahead = _download(client, downloads[index + 1])
        try:
            stored: StoredBatch[int] = store_batch(messages, options_for, ingest, _STEPS)
        finally:
            if ahead is not None:
                ahead.wait()
        for result in stored.results:
            report.count(result)
            done += 1
            if progress:
                progress(channel.name, done, total)
        refused += stored.refused
        taken = stored.taken
        arrived = {uid for uid, _ in messages}
        left_out.update(uid for uid in batch if uid not in arrived)
        if ahead is not None and ahead.failed:
            # The next download failed (a cut connection, a refusing server). This batch is
            # stored; its after-fetch action is still to do in the ledger, so the next run
            # applies it first.
            ahead.result()
        _apply_after_fetch(client, channel, uidvalidity, taken)
        crash_point("imap flagged")
    if left_out:
        _check_left_out(client, channel, uidvalidity, left_out, pending)
    if refused:  # the rest is stored and told: now the channel's failure (see batch.py)
        raise refused[0][1]


_STEPS = CrashPoints(downloaded="imap downloaded", stored="imap stored",
                     committed="imap committed")


def _download(client: ImapClient, batch: list[int]) -> Ahead[list[tuple[int, bytes]]]:
    """Start downloading ``batch`` (one UID FETCH) in the background."""
    return Ahead(lambda: list(client.fetch_messages(batch, batch_size=len(batch))))


def _check_left_out(client: ImapClient, channel: Channel, uidvalidity: int, uids: set[int],
                    pending: set[int]) -> None:
    """Messages the server listed but sent nothing for: gone, or a server that skips them.

    Gone ones are simply not there to take (a pending initial one never will be: it is
    marked skipped). Ones still there are a failure of this channel, logged so that nobody
    waits for mail that silently never arrives; they stay untouched on the server and, not
    being in the ledger, are asked for again next run.
    """
    still_there = client.existing_uids(uids)
    gone = [uid for uid in uids if uid not in still_there and uid in pending]
    if gone:
        LedgerEntry.update(
            status=SKIPPED, server_done=True, updated_at=utcnow(),
            error="deleted on the server before it was taken",
        ).where(
            (LedgerEntry.channel == channel) & (LedgerEntry.folder == channel.folder)
            & (LedgerEntry.uidvalidity == uidvalidity) & LedgerEntry.uid.in_(gone)
            & (LedgerEntry.status == PENDING)
        ).execute()
    if still_there:
        listed = sorted(still_there)
        shown = ", ".join(map(str, listed[:20])) + (", ..." if len(listed) > 20 else "")
        raise MailServerError(
            f"IMAP fetch with {client.endpoint.address} (folder \"{channel.folder}\") failed: "
            f"the server left {len(listed)} message(s) out of its answers although they are "
            "in the folder; they stay on the server and are asked for again next run.",
            operation="imap fetch",
            answer=f"no FETCH data for UID {shown}",
            hint="if the same messages fail on every run they may be damaged on the server: "
            "ask the mail administrator, or move them away with a mail client",
        )


def _apply_after_fetch(client: ImapClient, channel: Channel, uidvalidity: int,
                       uids: list[int]) -> None:
    """Tell the server (mark read, move, delete), then note in the ledger that it was done."""
    if not uids:
        return
    if channel.after_fetch == "mark_read":
        client.add_flags(uids)
    elif channel.after_fetch == "move":
        client.move(uids, channel.move_to_folder)
    elif channel.after_fetch == "delete":
        client.delete(uids)
    crash_point("imap server told")
    _mark_server_done(channel, uidvalidity, uids)


def _mark_server_done(channel: Channel, uidvalidity: int, uids: list[int]) -> None:
    LedgerEntry.update(server_done=True, updated_at=utcnow()).where(
        (LedgerEntry.channel == channel) & (LedgerEntry.folder == channel.folder)
        & (LedgerEntry.uidvalidity == uidvalidity) & LedgerEntry.uid.in_(uids)
    ).execute()


def _finish_server_actions(client: ImapClient, channel: Channel, uidvalidity: int,
                           unfinished: list[int]) -> None:
    """Apply the after-fetch action a crashed run stored but could not apply to the
    ``unfinished`` UIDs."""
    if unfinished:
        present = client.existing_uids(unfinished)
        gone = [uid for uid in unfinished if uid not in present]
        still_there = [uid for uid in unfinished if uid in present]
        if channel.after_fetch == "move" and "MOVE" not in client.capabilities:
            # Without MOVE a move is COPY, then \Deleted and EXPUNGE. A message that already
            # carries \Deleted was copied before the crash: copying it again would leave two
            # in the target folder, so it is only expunged.
            flags = client.fetch_flags(still_there)
            copied = [uid for uid in still_there if "\\Deleted" in flags.get(uid, set())]
            if copied:
                client.delete(copied)
                _mark_server_done(channel, uidvalidity, copied)
            still_there = [uid for uid in still_there if uid not in copied]
        _apply_after_fetch(client, channel, uidvalidity, still_there)
        if gone:  # moved or deleted by someone else meanwhile: nothing left to do
            LedgerEntry.update(server_done=True).where(
                (LedgerEntry.channel == channel) & (LedgerEntry.uidvalidity == uidvalidity)
                & LedgerEntry.uid.in_(gone)).execute()
