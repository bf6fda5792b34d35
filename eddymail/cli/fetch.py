"""``eddymail fetch``: the cron job."""

from __future__ import annotations

import time

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.errors import LockBusyError, PartialFailure
from eddymail.services.fetch import run as fetching
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
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=None,
              help="Channels fetched at the same time (default: [fetch] jobs).")
@json_option
@with_database
def fetch_command(names: tuple[str, ...], initial: str | None, no_notify: bool,
                  dry_run: bool, jobs: int | None) -> None:
    """Pull new mail from the channels' mailboxes into tickets (run it from cron).

    Each message is stored before the server is told anything (marked read, moved or
    deleted), so an interrupted run never loses mail and a repeated one never doubles it.
    Channels are fetched several at a time (--jobs); a channel another run (cron, watch,
    another host) is fetching right now is skipped with a notice.
    Exit codes: 0 ok, 3 some channels failed (see eddymail log), 4 configuration,
    database or keyring problem, 75 every channel was busy in another run.

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
        from eddymail.services.channels.firstimport import parse_initial

        parse_initial(initial)  # a typo is a usage error before anything is fetched
    settings = fetching.FetchSettings.from_config(
        config, initial=initial, notify=not no_notify, dry_run=dry_run, jobs=jobs)
    channels = fetching.channels_to_fetch(names)
    ends = time.monotonic() + settings.deadline  # fetching and sending share one deadline
    with out.progress("Fetching") as progress:
        reports = fetching.fetch_channels(channels, settings, progress)
    # Agents' digests that are due join the outbox, which rides along: replies and
    # notifications that could not be sent before (and those this run queued) go out now,
    # each at its back-off time. Each mail is claimed first, so runs on several hosts never
    # send one twice.
    summed = [] if dry_run else digests.send_due_digests()
    sent = [] if dry_run else outbox.send_due(timeout=settings.timeout, deadline=ends)
    if reports and all(report.busy for report in reports):
        raise LockBusyError(
            "Another eddymail fetch is running for every channel; this run stops here.")
    out.emit({"channels": reports, "digests": summed, "outbox": sent},
             lambda: _render(reports, sent, dry_run))
    failed = [report for report in reports if not report.ok]
    for report in failed:
        out.error(f"{report.name}: {report.error}", report.hint)
    unsent = [result for result in sent if not result.sent]
    for result in unsent:
        out.error(f"outbox #{result.id} ({result.kind} to {', '.join(result.recipients)}) not "
                  f"sent: {result.error}", result.hint)
    quarantined = [report for report in reports if report.ok and report.quarantined]
    if out.quiet:
        # Under cron nobody reads the summary, and the server was told the message was taken
        # (marked read, moved or deleted): the quarantine must not pass in silence.
        for report in quarantined:
            out.error(f"{report.name}: {report.quarantined} message(s) quarantined",
                      "See eddymail mail quarantine list; eddymail mail retry ID after a fix.")
    if failed or unsent or (out.quiet and quarantined):
        raise PartialFailure("")  # each failure was reported above, one line each


def _render(reports: list[ChannelFetchReport], sent: list[outbox.SendResult],
            dry_run: bool) -> None:
    out = state().output
    if not reports:
        out.line("No channel with an incoming server to fetch from.")
    for report in reports:
        if not report.ok:
            continue
        if report.busy:
            out.line(f"{report.name}: {report.notices[0]}")
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
