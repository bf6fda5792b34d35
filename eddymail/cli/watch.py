"""``eddymail watch``: the long-running alternative to cron."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import click

from eddymail.cli.app import state, with_database
from eddymail.services.channels.firstimport import parse_initial
from eddymail.services.fetch.state import FetchSettings
from eddymail.services.watch.channel import WatchSettings
from eddymail.services.watch.supervisor import Watch


@click.command("watch")
@click.argument("names", nargs=-1)
@click.option("--once", is_flag=True, help="Take what is waiting, wait for the next new mail, "
              "take it, send the outbox and exit (for tests and scripts).")
@click.option("--initial", help="For channels connected for the first time: take the last N "
              "unread messages, 'all' or 'none' (overrides the channel setting).")
@click.option("--no-notify", is_flag=True, help="Import without sending any notification.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Fetches running at the same time (default: [fetch] jobs).")
@with_database
def watch_command(names: tuple[str, ...], once: bool, initial: str | None, no_notify: bool,
                  jobs: int | None) -> None:
    """Turn new mail into tickets within seconds, until stopped (a service, not a cron job).

    IMAP channels wait in IDLE and fetch as soon as the server announces mail; POP3
    channels (and servers without IDLE) are asked every [watch] poll_seconds. The outbox
    is sent as it fills. Channels added, edited or removed are followed without a
    restart; a lost connection is retried with growing waits. SIGTERM stops it cleanly:
    the batch in hand is stored (or left on the server), nothing is lost. One log line
    per event on stderr (-q: warnings only). Any number of watch and fetch processes,
    on any number of hosts, may share one PostgreSQL database: each channel is fetched
    by one of them at a time.

    \b
    Examples:
      eddymail watch
      eddymail watch support sales
      systemd: see "Running eddymail watch as a service" in the README
    """
    app = state()
    config = app.runtime.config
    if initial is not None:
        parse_initial(initial)
    section = "watch"
    settings = WatchSettings(
        fetch=FetchSettings.from_config(config, initial=initial, notify=not no_notify,
                                        jobs=jobs),
        idle_seconds=float(config.get(section, "idle_seconds")),
        poll_seconds=float(config.get(section, "poll_seconds")),
        reload_seconds=float(config.get(section, "reload_seconds")),
        outbox_seconds=float(config.get(section, "outbox_seconds")),
        backoff_seconds=float(config.get(section, "backoff_seconds")),
        backoff_max_seconds=float(config.get(section, "backoff_max_seconds")),
        once=once,
    )
    logger = logging.getLogger("eddymail")
    if not app.output.quiet and logger.level > logging.INFO:
        logger.setLevel(logging.INFO)  # the events are what a watch prints
    watch = Watch(settings, names)

    def stop(number: int, _frame: FrameType | None) -> None:
        watch.stop(signal.Signals(number).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        watch.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
