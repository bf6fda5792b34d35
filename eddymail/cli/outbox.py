"""``eddymail outbox``: mail waiting to be sent."""

from __future__ import annotations

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.errors import PartialFailure
from eddymail.services.outgoing import digests, outbox


@click.group("outbox")
def outbox_group() -> None:
    """Outgoing mail waiting to be sent (replies, notifications, test letters).

    A mail interrupted during sending is sent again by the next run: at once if the
    server never got its text, after an hour (with the same Message-ID) if it may have.

    \b
    Examples:
      eddymail outbox list
      eddymail outbox retry
      eddymail outbox cancel 12
      eddymail outbox purge --failed
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
    outbox.release_abandoned()  # what a dead process left "sending" may be due again
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


@outbox_group.command("cancel")
@click.argument("item_id", type=int)
@json_option
@with_database
def cancel(item_id: int) -> None:
    """Never send this mail (queued or failed); it stays listed until purged.

    \b
    Example:
      eddymail outbox cancel 12
    """
    entry = outbox.cancel(item_id)
    out = state().output
    out.emit({"cancelled": entry}, lambda: out.success(
        f"Outbox mail #{entry.id} ({entry.template or entry.kind} to "
        f"{', '.join(entry.recipients)}) cancelled."))


@outbox_group.command("purge")
@click.option("--failed", is_flag=True, help="Delete failed and cancelled mail.")
@json_option
@with_database
def purge(failed: bool) -> None:
    """Delete mail that will never be sent (failed, e.g. a channel test letter, or cancelled).

    \b
    Example:
      eddymail outbox purge --failed
    """
    removed = outbox.purge(failed=failed)
    out = state().output
    out.emit({"purged": removed}, lambda: out.success(f"{removed} mail(s) removed from the "
                                                      "outbox."))
