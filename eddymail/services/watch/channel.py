"""One channel in ``watch``: a thread that keeps a session open and fetches when mail comes.

IMAP with IDLE: fetch what is waiting, then IDLE until the server announces mail (or for
``idle_seconds``, re-issued well before the 29 minutes RFC 2177 allows), fetch again. IMAP
without IDLE and POP3: a fetch every ``poll_seconds``. Each fetch is a normal fetch pass
under the channel's lock (a cron run or another host fetching it right now is left alone),
with the same durable-first order, so stopping at any moment loses nothing.

A failure (a dropped connection, a server restarting, a wrong password) ends the session;
the watcher waits with exponential back-off and jitter, then connects again.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import peewee

from eddymail import secrets
from eddymail.db.connection import database_error, database_proxy
from eddymail.db.models import Channel
from eddymail.errors import EddymailError
from eddymail.mail.wire.imap import ImapClient
from eddymail.services import errorlog
from eddymail.services.channels.endpoints import incoming_endpoint
from eddymail.services.channels.signin import Credential, with_sign_in
from eddymail.services.fetch.imap import fetch_imap_session, open_session
from eddymail.services.fetch.locking import channel_lock
from eddymail.services.fetch.pop3 import fetch_pop3
from eddymail.services.fetch.state import ChannelFetchReport, Deadline, FetchSettings

log = logging.getLogger("eddymail.watch")

# A channel busy in another run is looked at again after this many seconds.
BUSY_RETRY = 5.0


@dataclass(frozen=True)
class WatchSettings:
    """How ``watch`` behaves (the ``[watch]`` configuration keys)."""

    fetch: FetchSettings
    idle_seconds: float = 25 * 60
    poll_seconds: float = 60.0
    reload_seconds: float = 10.0
    outbox_seconds: float = 5.0
    backoff_seconds: float = 2.0
    backoff_max_seconds: float = 300.0
    once: bool = False


class Shared:
    """What the watchers of one ``watch`` share: the stop flag, the bound on fetch passes
    running at once (each holds a database connection) and what to do with a pass's report.
    """

    def __init__(self, settings: WatchSettings,
                 on_report: Callable[[ChannelFetchReport, bool], None]) -> None:
        self.settings = settings
        self.stopping = threading.Event()
        self.passes = threading.BoundedSemaphore(max(settings.fetch.jobs, 1))
        self.on_report = on_report
        self._deadlines: set[Deadline] = set()
        self._lock = threading.Lock()

    def deadline(self) -> Deadline:
        """A fresh deadline for one pass, ended early when the watch stops."""
        deadline = Deadline(self.settings.fetch.deadline)
        with self._lock:
            if self.stopping.is_set():
                deadline.stop()
            self._deadlines.add(deadline)
        return deadline

    def forget(self, deadline: Deadline) -> None:
        with self._lock:
            self._deadlines.discard(deadline)

    def stop(self) -> None:
        """Stop everything: passes under way finish the batch in hand, nothing new starts."""
        with self._lock:
            self.stopping.set()
            for deadline in self._deadlines:
                deadline.stop()


def backoff_delay(failures: int, base: float, ceiling: float,
                  rng: random.Random | None = None) -> float:
    """The wait before reconnect number ``failures``: doubling from ``base`` up to
    ``ceiling``, then a random part of it taken away ("equal jitter"), so that many
    channels of one server that went down together do not all come back at one instant."""
    step = min(ceiling, base * 2 ** max(failures - 1, 0))
    return step / 2 + (rng or random).uniform(0, step / 2)


class ChannelWatcher:
    """Watches one channel in its own thread until ``stop()`` or the watch stops."""

    def __init__(self, channel: Channel, shared: Shared, *, added_later: bool) -> None:
        self.channel = channel
        self.shared = shared
        # The first pass of a channel that was there when the watch started is its start-up
        # catch-up; the first pass of one added later is news (it counts for --once).
        self.added_later = added_later
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"eddymail-watch-{channel.id}")

    @property
    def name(self) -> str:
        return str(self.channel.name)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end (it notices within a second, or after the pass in hand)."""
        self._stopped.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def stopping(self) -> bool:
        return self._stopped.is_set() or self.shared.stopping.is_set()

    def _wait(self, seconds: float) -> None:
        """Sleep up to ``seconds``, waking within a second when asked to stop."""
        ends = time.monotonic() + seconds
        while not self.stopping():
            left = ends - time.monotonic()
            if left <= 0:
                return
            self._stopped.wait(min(left, 1.0))

    # -- the loop ------------------------------------------------------------------------

    def _run(self) -> None:
        settings = self.shared.settings
        failures = 0
        first = True
        while not self.stopping():
            try:
                if self.channel.protocol == "imap":
                    self._imap(first)
                else:
                    self._poll(first)
                return  # a session ends without error only when asked to stop
            except (EddymailError, peewee.DatabaseError) as error:
                if self.stopping():
                    return
                first = False
                failures += 1
                delay = backoff_delay(failures, settings.backoff_seconds,
                                      settings.backoff_max_seconds)
                self._failed(error, delay)
                self._wait(delay)
            finally:
                close_thread_connection()

    def _failed(self, error: Exception, delay: float) -> None:
        problem = database_error(error) if isinstance(error, peewee.DatabaseError) else error
        assert isinstance(problem, EddymailError)
        text = problem.message
        try:
            entry = errorlog.record_failure(channel=self.channel, operation="watch",
                                            error=problem, secrets=secrets.carried_by(error))
            text = entry.message + (f" ({entry.answer})" if entry.answer and
                                    entry.answer not in entry.message else "")
        except (EddymailError, peewee.DatabaseError):
            pass  # the database is the trouble: the log line below still says it
        finally:
            close_thread_connection()
        log.warning("%s: %s; connecting again in %.1f s", self.name, text, delay)

    def _imap(self, first: bool) -> None:
        settings = self.shared.settings
        endpoint = incoming_endpoint(self.channel, settings.fetch.timeout)

        def session(credential: Credential) -> None:
            with open_session(self.channel, credential, settings.fetch, endpoint) as client:
                watch_session(client)

        def watch_session(client: ImapClient) -> None:
            nonlocal first
            idle = "IDLE" in client.capabilities
            waiting = "waiting for mail (IDLE)" if idle else (
                f"no IDLE on this server: looking every {settings.poll_seconds:g} s")
            while not self.stopping():
                report = self._pass(
                    lambda report, deadline: fetch_imap_session(
                        client, self.channel, settings.fetch, report, deadline, None),
                    first)
                first = False
                if report.busy:
                    self._wait(BUSY_RETRY)
                    continue
                if report.fetched:
                    continue  # more may have come while these were taken
                if waiting:  # once per session: caught up, now waiting
                    log.info("%s: connected, %s", self.name, waiting)
                    waiting = ""
                if idle:
                    if client.idle(settings.idle_seconds, self.stopping):
                        log.info("%s: new mail announced", self.name)
                else:
                    self._wait(settings.poll_seconds)

        with_sign_in(self.channel, timeout=settings.fetch.timeout, protocol="imap",
                     action=session)

    def _poll(self, first: bool) -> None:
        settings = self.shared.settings
        announce = True
        while not self.stopping():
            report = with_sign_in(self.channel, timeout=settings.fetch.timeout,
                                  protocol="pop3",
                                  action=functools.partial(self._pop3_pass, first=first))
            first = False
            if announce and not report.busy:  # caught up, now waiting
                log.info("%s: connected, looking for mail every %g s", self.name,
                         settings.poll_seconds)
                announce = False
            self._wait(BUSY_RETRY if report.busy else settings.poll_seconds)

    def _pop3_pass(self, credential: Credential, first: bool) -> ChannelFetchReport:
        """One POP3 fetch pass, signed in with ``credential``."""
        fetch = self.shared.settings.fetch
        return self._pass(lambda report, deadline: fetch_pop3(
            self.channel, credential, fetch, report, deadline, None), first)

    def _pass(self, fetch: Callable[[ChannelFetchReport, Deadline], None],
              first: bool) -> ChannelFetchReport:
        """One fetch pass under the channel's lock, with a database connection of its own
        for just this long (hundreds of idle channels must not hold hundreds of them)."""
        report = ChannelFetchReport(self.name)
        deadline = self.shared.deadline()
        try:
            with self.shared.passes, self._locked() as taken:
                if not taken:
                    report.busy = True
                    log.info("%s: another eddymail run is fetching it; again in %g s",
                             self.name, BUSY_RETRY)
                    return report
                fetch(report, deadline)
        finally:
            self.shared.forget(deadline)
            close_thread_connection()
        self.shared.on_report(report, first and not self.added_later)
        return report

    def _locked(self) -> AbstractContextManager[bool]:
        return channel_lock(self.channel.id)


def close_thread_connection() -> None:
    """Close this thread's database connection, if it has one."""
    database = database_proxy.obj
    if database is not None:
        database.close()
