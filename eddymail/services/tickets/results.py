"""Plain results of the ticket views that other result types name in their fields.

Kept apart, with nothing heavy imported, so ``ticket list`` (whose rows may carry a
``SearchMatch``) and ``ticket show`` (whose ``TicketDetail`` holds ``HistoryEntry`` items) can
name them without loading the search or history code that makes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class SearchMatch:
    """Why a ticket matched: its best message, where, and a line of text around the words."""

    message_id: int
    score: float | None  # higher is better, within one search; None: too many to rank
    field: str  # subject | people | body: where the snippet comes from
    snippet: str  # one line, from the message as stored (not folded)
    highlights: list[tuple[int, int]]  # [start, end) of the matching words in ``snippet``


@dataclass(frozen=True)
class HistoryEntry:
    """One line of ``ticket show``'s history."""

    at: datetime
    action: str
    agent: str | None  # the agent's handle when it happened; None: no agent (or the customer)
    actor: str  # how to name whoever did it: "Anna Petrova (anna)", "customer", "staff"
    detail: dict[str, Any]
    message_id: int | None
