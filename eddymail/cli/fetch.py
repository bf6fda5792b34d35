"""``eddymail fetch``: the cron job."""

from __future__ import annotations

import time

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.errors import PartialFailure
from eddymail.services.channels.drafts import parse_initial
from eddymail.services.fetch import run as fetching
from eddymail.services.fetch.locking import fetch_lock
from eddymail.services.fetch.run import ChannelFetchReport
from eddymail.services.outgoing import digests, outbox


@click.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--initial", help="For channels whose starting point this run records: take "
              "the last N unread messages, 'all', 'none' or 'since YYYY-MM-DD' (overrides the "
              "channel setting once; a choice made at channel add stands).")
@click.option("--no-notify", is_flag=True, help="Import without sending any notification.")
@click.option("--dry-run", is_flag=True, help="Connect and report what would be taken; "
              "change nothing.")
@json_option
@with_database
def fetch_command(names: tuple[str, ...], initial: str | None, no_notify: bool,
                  dry_run: bool) -> None:
    """Pull new mail from the channels' mailboxes into tickets (run it from cron).

    Each message is stored before the server is told anything (marked read, moved or
    deleted), so an interrupted run never loses mail and a repeated one never doubles it.
    Exit codes: 0 ok, 3 some channels failed (see eddymail log), 4 configuration,
    database or keyring problem, 75 another fetch is still running.

    \b
    Examples:
      eddymail fetch
      eddymail fetch support --initial none --dry-run
      */5 * * * *  eddymail -q fetch        (crontab: silent unless something fails)
    """
    app = state()
    out = app.output
    config = app.runtime.config
    if initial is not None:
        parse_initial(initial)  # a typo is a usage error before anything is fetched
    settings = fetching.FetchSettings(
        timeout=float(config.get("network", "timeout")),
        deadline=float(config.get("fetch", "deadline")),
        batch_size=int(config.get("fetch", "batch_size")),
        max_message_bytes=int(config.get("fetch", "max_message_bytes")),
        initial=initial,
        notify=not no_notify,
        dry_run=dry_run,
    )
    channels = fetching.channels_to_fetch(names)
    ends = time.monotonic() + settings.deadline  # fetching and sending share one deadline
    with fetch_lock(config.database_url):
        with out.progress("Fetching") as progress:
            reports = fetching.fetch_channels(channels, settings, progress)
        # Agents' digests that are due join the outbox, which rides along: replies and
        # notifications that could not be sent before (and those this run queued) go out
        # now, each at its back-off time.
        summed = [] if dry_run else digests.send_due_digests()
        sent = [] if dry_run else outbox.send_due(timeout=settings.timeout, deadline=ends)
    out.emit({"channels": reports, "digests": summed, "outbox": sent},
             lambda: _render(reports, sent, dry_run))
    failed = [report for report in reports if not report.ok]
    for report in failed:
        out.error(f"{report.name}: {report.error}", report.hint)
    unsent = [result for result in sent if not result.sent]
    for result in unsent:
        out.error(f"outbox #{result.id} ({result.kind} to {', '.join(result.recipients)}) not "
                  f"sent: {result.error}", result.hint)
    if failed or unsent:
        raise PartialFailure("")  # each failure was reported above, one line each


def _render(reports: list[ChannelFetchReport], sent: list[outbox.SendResult],
            dry_run: bool) -> None:
    out = state().output
    if not reports:
        out.line("No channel with an incoming server to fetch from.")
    for report in reports:
        if not report.ok:
            continue
        if dry_run:
            first = " (first connection)" if report.first_connection else ""
            out.line(f"{report.name}: would take {report.would_fetch} message(s){first}")
            continue
        parts = [f"{report.new_tickets} new ticket(s)", f"{report.followups} follow-up(s)"]
        for count, label in ((report.duplicates, "duplicate(s)"),
                             (report.recorded, "automatic"),
                             (report.quarantined, "quarantined")):
            if count:
                parts.append(f"{count} {label}")
        out.line(f"{report.name}: {report.fetched} fetched: {', '.join(parts)}")
        for notice in report.notices:
            if out.verbose:
                out.line(f"  {notice}", style="dim")
    delivered = sum(1 for result in sent if result.sent)
    if delivered:
        out.line(f"outbox: {delivered} mail(s) sent")
