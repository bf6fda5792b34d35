"""``eddymail fetch``: pull mail from every channel's mailbox into tickets, losslessly.

Order per message, so a crash anywhere means a retry and never a loss: download with
``BODY.PEEK[]`` (IMAP) or ``RETR`` (POP3), store and commit (``ingestion.ingest_raw``), and
only then touch the server (``\\Seen``, move, delete, ``DELE``), recording in the ledger that
it was done. A ledger row that says "imported but the server was not told yet" is finished
on the next run.

What is taken (IMAP): every message that arrived after the channel was first connected, read
by someone in webmail or not (``unread_only`` keeps the classic "unread only" rule), plus, at
the first connection, the last N unread older ones (``initial_limit``). Older mail is left
alone for good: the first connection records the highest UID as the baseline, and the chosen
initial messages as pending ledger rows. POP3 has no flags: at the first connection the last
N messages are pending and the others are marked skipped.

Each channel is isolated: its failure is logged with the server's answer and the others are
still fetched. A server that answers too much (a literal or a message far over the size
limit), garbles its answers or never ends them costs only its channel. The database is
different: when it is locked past the busy timeout, full or read-only, no channel can be
fetched, so the run stops with a ``DatabaseError`` (exit 4); the server was told nothing
about mail that was not committed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import peewee

from eddymail import secrets
from eddymail.crashpoints import crash_point
from eddymail.db import database_error, database_proxy
from eddymail.errors import (
    DatabaseError,
    EddymailError,
    KeyringUnavailableError,
    MailServerError,
)
from eddymail.mail.endpoint import Endpoint
from eddymail.mail.imap import ImapClient
from eddymail.mail.pop3 import Pop3Client
from eddymail.models import Channel, ChannelCursor, Department, LedgerEntry, utcnow
from eddymail.services import errorlog, ingestion
from eddymail.services.channels import INITIAL_ALL, find_channel, parse_initial, password_source
from eddymail.services.endpoints import incoming_endpoint, provider_hints_of
from eddymail.services.ingestion import PENDING, SKIPPED, IngestOptions, Source

log = logging.getLogger("eddymail.fetch")

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
    notices: list[str] = field(default_factory=list)
    error: str | None = None
    hint: str | None = None

    def count(self, result: ingestion.IngestResult) -> None:
        """Add one message's outcome."""
        self.fetched += 1
        attribute = {
            ingestion.NEW_TICKET: "new_tickets", ingestion.FOLLOWUP: "followups",
            ingestion.DUPLICATE: "duplicates", ingestion.RECORDED: "recorded",
            ingestion.QUARANTINED: "quarantined",
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
    initial: str | None = None  # --initial override for channels connected in this run
    notify: bool = True
    dry_run: bool = False


class Deadline:
    """The overall time budget of a run, so a slow server never holds cron forever."""

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.ends - time.monotonic())

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


def channels_to_fetch(names: Iterable[str]) -> list[Channel]:
    """The named channels, or every enabled one with incoming settings."""
    names = list(names)
    if names:
        return [find_channel(name) for name in names]
    incoming = Channel.enabled & (Channel.protocol != "none")
    return list(Channel.select().where(incoming).order_by(Channel.name))


def fetch_channels(
    channels: list[Channel], settings: FetchSettings, progress: Progress | None = None
) -> list[ChannelFetchReport]:
    """Fetch each channel in turn; a failure of one is logged and the others go on.

    Raises ``DatabaseError`` when the database itself fails (locked past the busy timeout,
    full, read-only): that is no channel's fault and every channel would meet it.
    """
    deadline = Deadline(settings.deadline)
    reports = []
    try:
        for channel in channels:
            report = ChannelFetchReport(channel.name)
            reports.append(report)
            if channel.protocol == "none":
                report.ok, report.error = False, "the channel has no incoming server"
                continue
            password = ""
            try:
                deadline.check()
                password = secrets.get_password(password_source(channel))
                fetcher = _fetch_imap if channel.protocol == "imap" else _fetch_pop3
                fetcher(channel, password, settings, report, deadline, progress)
            except (KeyringUnavailableError, DatabaseError, peewee.OperationalError):
                raise  # not this channel's fault: exit 4 for the whole run
            except (peewee.IntegrityError, peewee.DataError) as error:
                # Something in this channel's mail the schema refuses: its failure alone. (A
                # ProgrammingError is a bug and goes to the CLI's "unexpected" boundary.)
                _failed(report, channel, database_error(error), password)
            except EddymailError as error:
                _failed(report, channel, error, password)
    except peewee.OperationalError as error:
        problem = database_error(error)
        raise DatabaseError(
            f"{problem.message} The fetch stopped.",
            hint="nothing is lost: mail is marked read, moved or deleted on the server only "
            "after it is stored, so the next run takes what this one could not",
        ) from None
    return reports


def _failed(report: ChannelFetchReport, channel: Channel, error: EddymailError,
            password: str) -> None:
    """Log a channel's failure and put it in the report: our sentence, then the answer."""
    operation = error.operation if isinstance(error, MailServerError) else "fetch"
    entry = errorlog.record_failure(
        channel=channel, operation=operation or "fetch", error=error, secrets=[password],
    )
    report.ok = False
    # The sentence says what failed (TLS, a timeout, the deadline...); the server's own
    # words follow, as they are what a provider's support will ask for.
    report.error = entry.message
    if entry.answer and entry.answer not in entry.message:
        report.error += f" ({entry.answer})"
    report.hint = entry.hint or None
    # The command reports each failure on stderr itself; a second, logged line would
    # double what cron mails. -v shows it.
    log.info("fetch of %s failed: %s", channel.name, report.error)


# --- IMAP -----------------------------------------------------------------------------------


def _fetch_imap(channel: Channel, password: str, settings: FetchSettings,
                report: ChannelFetchReport, deadline: Deadline,
                progress: Progress | None) -> None:
    endpoint = deadline.endpoint(channel, settings.timeout)
    department = Department.get_by_id(channel.department_id)
    options = IngestOptions.for_run(notify=settings.notify,
                                    max_message_bytes=settings.max_message_bytes)
    with ImapClient(endpoint, password, provider_hints_of(channel),
                    max_literal=_response_limit(settings)) as client:
        status = client.select(channel.folder, readonly=settings.dry_run)
        cursor = ChannelCursor.get_or_none(
            (ChannelCursor.channel == channel) & (ChannelCursor.folder == channel.folder))
        initial: list[int] = []
        if cursor is None:
            report.first_connection = True
            baseline = _highest_uid(client, status.uidnext)
            initial = _initial_uids(client, baseline, _initial_limit(channel, settings))
            if settings.dry_run:
                report.would_fetch = len(initial)
                return
            cursor = _connect_imap(channel, status.uidvalidity, baseline, initial)
            crash_point("imap connected")
        elif cursor.uidvalidity != status.uidvalidity:
            cursor = _uidvalidity_changed(client, channel, cursor, status.uidvalidity)
        uidvalidity = status.uidvalidity

        _finish_server_actions(client, channel, uidvalidity)
        todo, pending = _imap_todo(client, channel, cursor)
        if settings.dry_run:
            report.would_fetch = len(todo)
            return
        _take_imap(client, channel, department, todo, pending, uidvalidity, settings, options,
                   report, deadline, progress)


def _response_limit(settings: FetchSettings) -> int:
    """The most bytes one server answer may have: far more than any message we take.

    Mail between the size limit and this is read and then quarantined with its bytes (a
    server's RFC822.SIZE or LIST may count line ends differently); anything larger is a
    server that lies or attacks, and is refused before it is read.
    """
    return max(2 * settings.max_message_bytes, settings.max_message_bytes + 1024 * 1024)


def _highest_uid(client: ImapClient, uidnext: int | None) -> int:
    if uidnext:
        return uidnext - 1
    uids = client.search_uids("ALL")
    return max(uids) if uids else 0


def _initial_limit(channel: Channel, settings: FetchSettings) -> int:
    return parse_initial(settings.initial) if settings.initial else channel.initial_limit


def _initial_uids(client: ImapClient, baseline: int, limit: int) -> list[int]:
    if limit == 0 or baseline == 0:
        return []
    unread = sorted(uid for uid in client.search_uids("UNSEEN") if uid <= baseline)
    return unread if limit == INITIAL_ALL else unread[-limit:]


def _connect_imap(channel: Channel, uidvalidity: int, baseline: int,
                  initial: list[int]) -> ChannelCursor:
    """Remember the first connection: the baseline and the chosen initial messages."""
    with database_proxy.atomic():
        cursor = ChannelCursor.create(channel=channel, folder=channel.folder,
                                      uidvalidity=uidvalidity, baseline_uid=baseline)
        LedgerEntry.insert_many(
            [{"channel": channel, "source": "imap", "folder": channel.folder,
              "uidvalidity": uidvalidity, "uid": uid, "sha256": "", "status": PENDING}
             for uid in initial]
        ).execute() if initial else None
        if channel.connected_at is None:
            Channel.update(connected_at=utcnow()).where(Channel.id == channel.id).execute()
    return cursor


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
        cursor.updated_at = utcnow()
        cursor.save()
    return cursor


def _imap_todo(client: ImapClient, channel: Channel,
               cursor: ChannelCursor) -> tuple[list[int], set[int]]:
    """UIDs to take now: new since the baseline and not in the ledger, plus pending ones."""
    ledger = LedgerEntry.select(LedgerEntry.uid, LedgerEntry.status).where(
        (LedgerEntry.channel == channel) & (LedgerEntry.folder == channel.folder)
        & (LedgerEntry.uidvalidity == cursor.uidvalidity)
    ).tuples()
    known, pending = set(), set()
    for uid, status in ledger:
        (pending if status == PENDING else known).add(uid)
    criteria = f"UID {cursor.baseline_uid + 1}:*"
    if channel.unread_only:
        criteria += " UNSEEN"
    # "n:*" always matches the highest UID, even one below n: filter on our side.
    fresh = {uid for uid in client.search_uids(criteria) if uid > cursor.baseline_uid}
    return sorted((fresh - known) | pending), pending


def _take_imap(client: ImapClient, channel: Channel, department: Department, todo: list[int],
               pending: set[int], uidvalidity: int, settings: FetchSettings,
               options: IngestOptions, report: ChannelFetchReport, deadline: Deadline,
               progress: Progress | None) -> None:
    if not todo:
        return
    sizes = client.fetch_sizes(todo)
    oversized = [uid for uid in todo if sizes.get(uid, 0) > settings.max_message_bytes]
    wanted = [uid for uid in todo if uid not in oversized and uid in sizes]
    # UIDs the search found but a FETCH answered nothing for: expunged meanwhile, or a
    # server that drops messages from its answers. Checked after the rest is taken.
    left_out = {uid for uid in todo if uid not in sizes}
    initial_options = IngestOptions(
        notify=options.notify and channel.notify_initial, limits=options.limits,
        tag_format=options.tag_format, own_addresses=options.own_addresses)
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
    for start in range(0, len(wanted), settings.batch_size):
        deadline.check()
        batch = wanted[start:start + settings.batch_size]
        taken: list[int] = []
        counted: list[ingestion.IngestResult] = []
        # One commit per batch (each message is a savepoint inside it): a commit is the
        # dearest statement of all, and the server still hears nothing before it.
        with database_proxy.atomic():
            for uid, raw in client.fetch_messages(batch, batch_size=settings.batch_size):
                crash_point("imap downloaded")
                counted.append(ingestion.ingest_raw(
                    raw, channel=channel, department=department,
                    source=Source("imap", channel.folder, uidvalidity, uid),
                    options=initial_options if uid in pending else options,
                ))
                crash_point("imap stored")
                taken.append(uid)
                done += 1
                if progress:
                    progress(channel.name, done, total)
        crash_point("imap committed")
        for result in counted:
            report.count(result)
        left_out.update(uid for uid in batch if uid not in taken)
        _apply_after_fetch(client, channel, uidvalidity, taken)
        crash_point("imap flagged")
    if left_out:
        _check_left_out(client, channel, uidvalidity, left_out, pending)


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


def _finish_server_actions(client: ImapClient, channel: Channel, uidvalidity: int) -> None:
    """Apply the after-fetch action a crashed run stored but could not apply."""
    unfinished = [uid for (uid,) in LedgerEntry.select(LedgerEntry.uid).where(
        (LedgerEntry.channel == channel) & (LedgerEntry.folder == channel.folder)
        & (LedgerEntry.uidvalidity == uidvalidity) & ~LedgerEntry.server_done
        & (LedgerEntry.status != PENDING) & (LedgerEntry.status != SKIPPED)
    ).tuples()]
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


# --- POP3 -----------------------------------------------------------------------------------


def _fetch_pop3(channel: Channel, password: str, settings: FetchSettings,
                report: ChannelFetchReport, deadline: Deadline,
                progress: Progress | None) -> None:
    endpoint = deadline.endpoint(channel, settings.timeout)
    department = Department.get_by_id(channel.department_id)
    options = IngestOptions.for_run(notify=settings.notify,
                                    max_message_bytes=settings.max_message_bytes)
    delete = channel.after_fetch == "delete"
    with Pop3Client(endpoint, password, provider_hints_of(channel),
                    max_response=_response_limit(settings)) as client:
        listing = client.uidl()
        ledger = {uidl: (status, done) for uidl, status, done in LedgerEntry.select(
            LedgerEntry.uidl, LedgerEntry.status, LedgerEntry.server_done).where(
            (LedgerEntry.channel == channel) & (LedgerEntry.source == "pop3")).tuples()}
        if not ledger and channel.connected_at is None:
            report.first_connection = True
            limit = _initial_limit(channel, settings)
            chosen = listing if limit == INITIAL_ALL else (listing[-limit:] if limit else [])
            if settings.dry_run:
                report.would_fetch = len(chosen)
                return
            ledger = _connect_pop3(channel, listing, {uidl for _, uidl in chosen})
            crash_point("pop3 connected")
        todo = [(number, uidl) for number, uidl in listing
                if uidl not in ledger or ledger[uidl][0] == PENDING]
        if settings.dry_run:
            report.would_fetch = len(todo)
            return
        initial_options = IngestOptions(
            notify=options.notify and channel.notify_initial, limits=options.limits,
            tag_format=options.tag_format, own_addresses=options.own_addresses)
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
                    options=initial_options if uidl in ledger else options)
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


def _connect_pop3(channel: Channel, listing: list[tuple[int, str]],
                  chosen: set[str]) -> dict[str, tuple[str, bool]]:
    """First connection: chosen messages pending, all others skipped for good."""
    ledger: dict[str, tuple[str, bool]] = {}
    with database_proxy.atomic():
        for _, uidl in listing:
            status = PENDING if uidl in chosen else SKIPPED
            LedgerEntry.create(channel=channel, source="pop3", uidl=uidl, sha256="",
                               status=status, server_done=status == SKIPPED)
            ledger[uidl] = (status, status == SKIPPED)
        Channel.update(connected_at=utcnow()).where(Channel.id == channel.id).execute()
    return ledger
