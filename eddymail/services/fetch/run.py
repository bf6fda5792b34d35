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

Channels are fetched ``jobs`` at a time, each in a thread with its own mail connection and
its own database connection; transactions stay short (one batch of downloaded mail), so
SQLite's single writer is never held while a server is waited for. A channel is fetched
under its own lock (``locking.channel_lock``): one another run (cron, ``watch``, another
host) is fetching right now is skipped with a notice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import peewee

from eddymail import secrets
from eddymail.db import fastsql
from eddymail.db.connection import database_error, database_proxy
from eddymail.db.models import Channel, utcnow
from eddymail.errors import (
    DatabaseError,
    EddymailError,
    KeyringUnavailableError,
    MailServerError,
)
from eddymail.services import errorlog
from eddymail.services.channels.lookup import find_channel
from eddymail.services.channels.signin import Credential, with_sign_in
from eddymail.services.fetch.imap import fetch_imap
from eddymail.services.fetch.locking import channel_lock
from eddymail.services.fetch.pop3 import fetch_pop3
from eddymail.services.fetch.state import (
    ChannelFetchReport,
    Deadline,
    FetchSettings,
    Progress,
)

__all__ = ["ChannelFetchReport", "FetchSettings", "channels_to_fetch", "fetch_channels"]

log = logging.getLogger("eddymail.fetch")


def channels_to_fetch(names: Iterable[str]) -> list[str]:
    """The names of the named channels (each checked to exist), or of every enabled one with
    incoming settings."""
    names = list(names)
    if names:
        return [channel.name for channel in _channels_named(names)]
    incoming = Channel.enabled & (Channel.protocol != "none")
    return [channel.name for channel in
            Channel.select(Channel.name).where(incoming).order_by(Channel.name)]


def fetch_channels(
    names: list[str], settings: FetchSettings, progress: Progress | None = None
) -> list[ChannelFetchReport]:
    """Fetch the channels called ``names``, ``settings.jobs`` at a time; reports in the
    order given.

    Each channel has its own connection, lock and error handling: a failure of one is
    logged and the others go on, and a channel another run is fetching right now is
    skipped (``busy``). Raises ``DatabaseError`` when the database itself fails (locked
    past the busy timeout, full, read-only): that is no channel's fault and every channel
    would meet it; the channels not started yet are then not started at all.
    """
    deadline = Deadline(settings.deadline)
    stop = threading.Event()  # set by the first fatal error: start no further channel
    try:
        channels = _channels_named(names)
        run = _Run(settings, deadline, progress, stop, started=database_now())
        if settings.jobs <= 1 or len(channels) <= 1 or _single_connection():
            return [_fetch_channel(channel, run) for channel in channels]
        return _in_threads(channels, run)
    except peewee.OperationalError as error:
        problem = database_error(error)
        raise DatabaseError(
            f"{problem.message} The fetch stopped.",
            hint="nothing is lost: mail is marked read, moved or deleted on the server only "
            "after it is stored, so the next run takes what this one could not",
        ) from None


@dataclass(frozen=True)
class _Run:
    """What every channel of one run shares."""

    settings: FetchSettings
    deadline: Deadline
    progress: Progress | None
    stop: threading.Event  # set by the first fatal error: start no further channel
    started: datetime  # by the database's clock


def _fetch_channel(channel: Channel, run: _Run) -> ChannelFetchReport:
    """One channel under its lock; its failures end up in its report.

    Skipped (``busy``) when another run is fetching it right now, or began fetching it
    after this run began (on any host): it was just done, and what came since is the next
    run's. So several hosts running the same cron job share the channels between them.
    """
    report = ChannelFetchReport(channel.name)
    if channel.protocol == "none":
        report.ok, report.error = False, "the channel has no incoming server"
        return report
    if run.stop.is_set():
        report.ok, report.error = False, "not fetched: the run stopped on a database error"
        return report
    try:
        with channel_lock(channel.id) as taken:
            why = "another eddymail run is fetching it now" if not taken else _done_since(
                channel, run)
            if why:
                report.busy = True
                report.notices.append(f"skipped, {why}")
                log.info("fetch of %s skipped: %s", channel.name, why)
                return report
            _fetch_locked(channel, run.settings, report, run.deadline, run.progress)
    except BaseException:
        run.stop.set()
        raise
    return report


def _done_since(channel: Channel, run: _Run) -> str:
    """Why not to fetch ``channel`` now ("" if it should be): another run began it later
    than this one began. Otherwise note that this run begins it now (one statement: the
    check and the note, its SQL kept: it runs for every channel)."""
    postgresql = not isinstance(database_proxy.obj, peewee.SqliteDatabase)
    now = utcnow()
    params: list[object] = [] if run.settings.dry_run or postgresql else [now]
    params += [channel.id, run.started]

    def build() -> peewee.Query:
        mine = (Channel.id == channel.id) & (
            Channel.fetch_started_at.is_null() | (Channel.fetch_started_at <= run.started))
        if run.settings.dry_run:
            return Channel.select(Channel.id).where(mine)
        # PostgreSQL: the database's clock, read as the statement runs (see database_now).
        began = peewee.SQL(f"({_POSTGRESQL_NOW})") if postgresql else now
        return Channel.update(fetch_started_at=began).where(mine)

    done = fastsql.execute(("fetch claim", run.settings.dry_run, postgresql), build, params)
    free = bool(done.fetchall()) if run.settings.dry_run else done.rowcount > 0
    return "" if free else "another eddymail run fetched it after this one began"


def database_now() -> datetime:
    """Now as naive UTC by the database's clock: one clock for every host using it."""
    database = database_proxy.obj
    if isinstance(database, peewee.SqliteDatabase):
        return utcnow()
    row = database.execute_sql(f"SELECT {_POSTGRESQL_NOW}").fetchone()
    return cast(datetime, row[0])


# The database's clock, read where a statement runs (PostgreSQL: on the database host).
_POSTGRESQL_NOW = "clock_timestamp() AT TIME ZONE 'UTC'"


def _fetch_locked(channel: Channel, settings: FetchSettings, report: ChannelFetchReport,
                  deadline: Deadline, progress: Progress | None) -> None:
    try:
        deadline.check()
        with_sign_in(channel, timeout=settings.timeout, protocol=channel.protocol,
                     action=_fetcher(channel, settings, report, deadline, progress))
    except (KeyringUnavailableError, DatabaseError, peewee.OperationalError):
        raise  # not this channel's fault: exit 4 for the whole run
    except (peewee.IntegrityError, peewee.DataError) as error:
        # Something in this channel's mail the schema refuses: its failure alone. (A
        # ProgrammingError is a bug and goes to the CLI's "unexpected" boundary.)
        _failed(report, channel, database_error(error), secrets.carried_by(error))
    except EddymailError as error:
        _failed(report, channel, error, secrets.carried_by(error))


def _single_connection() -> bool:
    """An in-memory SQLite database exists only in its one connection: no threads then."""
    database = database_proxy.obj
    return isinstance(database, peewee.SqliteDatabase) and database.database == ":memory:"


def _channels_named(names: list[str]) -> list[Channel]:
    """The channels called ``names``, in that order, read in one query (``NotFoundError``
    for a name that is not there)."""
    found = {channel.name: channel
             for channel in Channel.select().where(Channel.name.in_(names))}
    return [found.get(name) or find_channel(name) for name in names]


def _in_threads(channels: list[Channel], run: _Run) -> list[ChannelFetchReport]:
    """Fetch ``channels`` in ``jobs`` threads, each taking the next channel when it is done
    with one; the reports in the order given, or the fatal error of the first channel (in
    that order) that met one.

    Each thread has its own database connection (peewee's are per thread), opened once for
    all the channels it fetches and closed when it runs out of them, or after a channel
    that failed (whatever state that left it in is not the next channel's problem).
    SQLite's single writer still sees only short transactions.
    """
    reports: list[ChannelFetchReport | None] = [None] * len(channels)
    fatal: dict[int, BaseException] = {}
    queue = iter(enumerate(channels))
    taking = threading.Lock()

    def work() -> None:
        try:
            while True:
                with taking:
                    index, channel = next(queue, (-1, None))
                if channel is None:
                    return
                try:
                    report = reports[index] = _fetch_channel(channel, run)
                except BaseException as error:
                    fatal[index] = error
                    database_proxy.obj.close()
                    continue
                if not report.ok:
                    database_proxy.obj.close()
        finally:
            database_proxy.obj.close()

    threads = [threading.Thread(target=work, name=f"eddymail-fetch-{number}")
               for number in range(min(run.settings.jobs, len(channels)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if fatal:
        raise fatal[min(fatal)]
    return [report for report in reports if report is not None]


def _fetcher(channel: Channel, settings: FetchSettings, report: ChannelFetchReport,
             deadline: Deadline, progress: Progress | None) -> Callable[[Credential], None]:
    """The channel's fetch, waiting for its credential (a password or an access token)."""
    fetcher = fetch_imap if channel.protocol == "imap" else fetch_pop3
    return lambda credential: fetcher(channel, credential, settings, report, deadline, progress)


def _failed(report: ChannelFetchReport, channel: Channel, error: EddymailError,
            known_secrets: list[str]) -> None:
    """Log a channel's failure and put it in the report: our sentence, then the answer."""
    operation = error.operation if isinstance(error, MailServerError) else "fetch"
    entry = errorlog.record_failure(
        channel=channel, operation=operation or "fetch", error=error, secrets=known_secrets,
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
