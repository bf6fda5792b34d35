"""``eddymail ingest``: mail from files, stdin (an MTA pipe), mbox files or Maildirs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.errors import EXIT_ENVIRONMENT, EXIT_LOCKED, PartialFailure, TemporaryFailure
from eddymail.services.ingest import pipeline as ingestion
from eddymail.services.ingest import rawmail as messages
from eddymail.services.runtime import expected_error

# Exit codes of conditions that pass by themselves or once an administrator acts.
TEMPORARY_CODES = (EXIT_ENVIRONMENT, EXIT_LOCKED)


@click.command("ingest")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--channel", "channel_name", help="The channel the mail arrived at.")
@click.option("--department", "department_name",
              help="The department for new tickets (default: the channel's, or the only one).")
@click.option("--no-notify", is_flag=True, help="Send no notification for this mail.")
@json_option
def ingest_command(files: tuple[Path, ...], channel_name: str | None,
                   department_name: str | None, no_notify: bool) -> None:
    """Turn raw messages into tickets: .eml files, mbox files, Maildirs, or stdin.

    The same pipeline as fetch: the same duplicate detection, threading and notifications.
    Reading stdin (no FILE, or "-"), it is a delivery program for a mail server: any
    temporary problem exits 75 (EX_TEMPFAIL), so the mail server keeps the message and
    retries instead of bouncing it.

    \b
    Examples:
      eddymail ingest --channel support saved/*.eml
      eddymail ingest --department Support ~/Mail/archive.mbox
      /etc/aliases:  support: "|/usr/local/bin/eddymail -q ingest --channel support"
    """
    from_stdin = not files or any(str(f) == "-" for f in files)
    try:
        _ingest(files, channel_name, department_name, no_notify)
    except Exception as error:
        # A mail server bounces on any other code: every condition that may pass (database
        # locked, disk full, database unreachable, no driver, keyring away) is EX_TEMPFAIL.
        expected = expected_error(error)
        if from_stdin and expected is not None and expected.exit_code in TEMPORARY_CODES:
            raise TemporaryFailure(expected.message + " (temporary failure: retry later)",
                                   hint=expected.hint) from None
        if expected is not None and expected is not error:
            raise expected from None
        raise


@with_database
def _ingest(files: tuple[Path, ...], channel_name: str | None, department_name: str | None,
            no_notify: bool) -> None:
    out = state().output
    destination = messages.destination(channel_name, department_name)
    options = ingestion.IngestOptions.for_run(
        notify=not no_notify,
        max_message_bytes=int(state().runtime.config.get("fetch", "max_message_bytes")))
    outcomes = []
    for path in files or (Path("-"),):
        if str(path) == "-":
            outcomes.append(messages.ingest_bytes("<stdin>", sys.stdin.buffer.read(),
                                                  destination=destination, options=options))
            continue
        for label, raw in messages.messages_in(path):
            outcomes.append(messages.ingest_bytes(label, raw, destination=destination,
                                                  options=options))

    def render() -> None:
        for outcome in outcomes:
            where = f"ticket #{outcome.ticket_id}" if outcome.ticket_id else "no ticket"
            text = {
                ingestion.NEW_TICKET: f"new {where}", ingestion.FOLLOWUP: f"added to {where}",
                ingestion.DUPLICATE: f"already known ({where})",
                ingestion.RECORDED: f"automatic mail recorded ({where})",
                ingestion.QUARANTINED: f"quarantined: {outcome.error}",
            }[outcome.status]
            out.line(f"{outcome.file}: {text}")

    out.emit({"messages": outcomes}, render)
    if not outcomes:
        raise PartialFailure("No message found in the given files.")
