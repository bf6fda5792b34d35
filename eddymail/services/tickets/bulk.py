"""One change applied to many tickets: close 40 spam tickets, tag a search's results.

The tickets are named by number or found by a search (``ticket list --search``'s, with its
status filter). Each ticket changes in its own transaction, exactly as one ``ticket close N``
would (history, system message, notifications); one that cannot change (merged, gone) is
reported and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from eddymail.errors import EddymailError, ValidationError
from eddymail.services.tickets.queries import list_tickets

MAX_TICKETS = 10_000


@dataclass(frozen=True)
class BulkOutcome:
    """What became of one ticket of a bulk change."""

    ticket_id: int
    ok: bool
    result: Any  # the change's own report (TicketChange, LabelChange); None when it failed
    error: str | None = None


def select_tickets(ids: Sequence[int] = (), *, search: str | None = None,
                   status: str = "active") -> list[int]:
    """The tickets a bulk change is for: the numbers given, then a search's matches."""
    chosen = list(dict.fromkeys(ids))
    if search is not None:
        found = list_tickets(search=search, status=status, limit=MAX_TICKETS + 1)
        if len(found) > MAX_TICKETS:
            raise ValidationError(f"The search finds over {MAX_TICKETS} tickets: narrow it "
                                  "(more words, --status).")
        chosen += [ticket.id for ticket in found if ticket.id not in chosen]
    if not chosen and search is None:
        raise ValidationError("Name the tickets (numbers) or find them with --search.")
    return chosen


def apply(ticket_ids: Sequence[int], change: Callable[[int], Any]) -> list[BulkOutcome]:
    """Run ``change(ticket_id)`` for every ticket; a failure is recorded, not raised."""
    outcomes = []
    for ticket_id in ticket_ids:
        try:
            outcomes.append(BulkOutcome(ticket_id, True, change(ticket_id)))
        except EddymailError as error:
            outcomes.append(BulkOutcome(ticket_id, False, None, error.message))
    return outcomes
