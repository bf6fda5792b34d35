"""The ``watch`` process: a watcher per channel, the outbox sender, and channel changes.

Every ``reload_seconds`` the channel list is read again: a channel added (or enabled) gets a
watcher, one removed (or disabled) loses it, and one edited gets a fresh one with its new
settings. The outbox is sent whenever a fetch queued mail, and every ``outbox_seconds`` for
the replies staff write meanwhile. ``stop()`` (SIGTERM) ends it all cleanly: passes under way
finish the batch in hand (stored and committed, or not started), nothing new begins.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable

import peewee

from eddymail.db.connection import database_error
from eddymail.db.models import Channel
from eddymail.errors import EddymailError
from eddymail.services.fetch.state import ChannelFetchReport
from eddymail.services.outgoing import outbox
from eddymail.services.watch.channel import (
    ChannelWatcher,
    Shared,
    WatchSettings,
    close_thread_connection,
)

log = logging.getLogger("eddymail.watch")

# How long stopping waits for the watchers to finish the pass in hand.
STOP_GRACE = 60.0


class Watch:
    """Run with :meth:`run`; :meth:`stop` may be called from a signal handler."""

    def __init__(self, settings: WatchSettings, names: Iterable[str] = ()) -> None:
        self.settings = settings
        self.names = list(names)
        self.shared = Shared(settings, self._report)
        self._watchers: dict[int, tuple[object, ChannelWatcher]] = {}
        self._wake_outbox = threading.Event()
        self._news = threading.Event()  # --once: mail came in after the start
        self._started = False
        self._why = ""

    def stop(self, why: str = "") -> None:
        """End the watch (safe from a signal handler: it only sets flags)."""
        self.shared.stop()
        self._wake_outbox.set()
        self._why = why
        log.info("stopping%s: finishing what is in hand", f" ({why})" if why else "")

    def run(self) -> None:
        """Watch until stopped (or, with ``once``, until the first news was taken in)."""
        log.info("watching for mail (pid %s)", os.getpid())
        sender = threading.Thread(target=self._send_loop, name="eddymail-outbox", daemon=True)
        sender.start()
        try:
            while not self.shared.stopping.is_set():
                self._reconcile()
                self._started = True
                if self._news.wait(self.settings.reload_seconds) and self.settings.once:
                    break
        finally:
            self.shared.stop()
            for _, watcher in self._watchers.values():
                watcher.stop()
            ends = time.monotonic() + STOP_GRACE
            for _, watcher in self._watchers.values():
                watcher.join(max(0.0, ends - time.monotonic()))
            self._wake_outbox.set()
            sender.join(STOP_GRACE)
        if self.settings.once:
            self._send_outbox()  # what the news queued (notifications) goes out before exit
        log.info("stopped%s", f" ({self._why})" if self._why else "")

    # -- channels ------------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Start, stop and restart watchers to match the channels in the database now."""
        try:
            query = Channel.select().where(Channel.enabled
                                           & Channel.protocol.in_(("imap", "pop3")))
            if self.names:  # a named channel removed meanwhile is simply not watched
                query = query.where(Channel.name.in_(self.names))
            channels = list(query)
        except (EddymailError, peewee.DatabaseError) as error:
            problem = database_error(error) if isinstance(error, peewee.DatabaseError) else error
            log.warning("cannot read the channels: %s", problem.message)
            return
        finally:
            close_thread_connection()
        current = {channel.id: channel for channel in channels}
        for channel_id in list(self._watchers):
            signature, watcher = self._watchers[channel_id]
            channel = current.get(channel_id)
            if channel is None or _signature(channel) != signature:
                watcher.stop()
                del self._watchers[channel_id]
                log.info("%s: channel %s", watcher.name,
                         "removed or disabled" if channel is None else "changed; reconnecting")
        for channel_id, channel in current.items():
            if channel_id not in self._watchers:
                if self._started:
                    log.info("%s: channel added", channel.name)
                watcher = ChannelWatcher(channel, self.shared, added_later=self._started)
                self._watchers[channel_id] = (_signature(channel), watcher)
                watcher.start()

    def _report(self, report: ChannelFetchReport, catching_up: bool) -> None:
        """Called by a watcher after each pass: one log line for mail taken, outbox nudge."""
        if not report.fetched:
            return
        parts = [f"{report.new_tickets} new ticket(s)", f"{report.followups} follow-up(s)"]
        for count, label in ((report.duplicates, "duplicate(s)"), (report.recorded, "automatic"),
                             (report.quarantined, "quarantined")):
            if count:
                parts.append(f"{count} {label}")
        log.info("%s: %d fetched: %s", report.name, report.fetched, ", ".join(parts))
        self._wake_outbox.set()
        if not catching_up:
            self._news.set()

    # -- outbox --------------------------------------------------------------------------

    def _send_loop(self) -> None:
        while not self.shared.stopping.is_set():
            self._wake_outbox.wait(self.settings.outbox_seconds)
            self._wake_outbox.clear()
            if self.shared.stopping.is_set():
                return
            self._send_outbox()

    def _send_outbox(self) -> None:
        try:
            ends = time.monotonic() + self.settings.fetch.deadline
            for result in outbox.send_due(timeout=self.settings.fetch.timeout, deadline=ends):
                if result.sent:
                    log.info("outbox #%s (%s) sent", result.id, result.kind)
                else:
                    log.warning("outbox #%s (%s) not sent: %s", result.id, result.kind,
                                result.error)
        except (EddymailError, peewee.DatabaseError) as error:
            problem = database_error(error) if isinstance(error, peewee.DatabaseError) else error
            log.warning("outbox: %s", problem.message)
        finally:
            close_thread_connection()


def _signature(channel: Channel) -> object:
    """What makes a watcher outdated: any edit of the channel (``updated_at``)."""
    return channel.updated_at
