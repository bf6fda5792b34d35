"""``eddymail outbox``: mail waiting to be sent."""

from __future__ import annotations

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.errors import PartialFailure
from eddymail.services.outgoing import digests, outbox


@click.group("outbox")
def outbox_group() -> None:
    """Outgoing mail waiting to be sent (replies, notifications, test letters).

    \b
    Examples:
      eddymail outbox list
      eddymail outbox retry
    """


@outbox_group.command("list")
@click.option("--all", "include_sent", is_flag=True, help="Include mail already sent.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
@with_database
def list_(include_sent: bool, limit: int) -> None:
    """Show what is waiting to be sent and why.

    \b
    Example:
      eddymail outbox list --json
    """
    items = outbox.list_outbox(include_sent=include_sent, limit=limit)
    out = state().output
    out.emit({"outbox": items}, lambda: out.table(
        ["ID", "Kind", "Ticket", "To", "Status", "Tries", "Next try", "Last error"],
        [[i.id, i.template or i.kind, i.ticket_id or "-", ", ".join(i.recipients), i.status,
          i.attempts, i.next_attempt_at or "-", i.last_error or ""] for i in items],
        empty="The outbox is empty.", wrap=("Last error",)))


@outbox_group.command("retry")
@click.argument("ids", nargs=-1, type=int)
@json_option
@with_database
def retry(ids: tuple[int, ...]) -> None:
    """Send waiting mail now, ignoring the back-off (IDs: only these, failed ones too).

    Without IDs, agents' digests that are due are queued first and sent with the rest.

    \b
    Examples:
      eddymail outbox retry
      eddymail outbox retry 12 13
    """
    timeout = float(state().runtime.config.get("network", "timeout"))
    if not ids:
        digests.send_due_digests()
    if ids:
        results = outbox.send_due(ids=list(ids), include_failed=True, timeout=timeout)
    else:
        results = outbox.send_due(ids=[e.id for e in outbox.list_outbox(limit=10_000)
                                       if e.status == "queued"], timeout=timeout)
    out = state().output
    out.emit({"results": results}, lambda: out.table(
        ["ID", "Kind", "To", "Result", "Error"],
        [[r.id, r.kind, ", ".join(r.recipients), "sent" if r.sent else r.status, r.error or ""]
         for r in results], empty="Nothing to send.", wrap=("Error",)))
    failed = [r for r in results if not r.sent]
    if failed:
        raise PartialFailure(f"{len(failed)} mail(s) could not be sent (details: eddymail log).")
