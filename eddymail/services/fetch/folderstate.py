"""What the database knows of a channel's IMAP folder when a fetch pass begins.

An idle mailbox is the common case: a run over hundreds of them spends more CPU building
the same few statements than the database spends running them (peewee builds each one
anew, about 0.4 ms; SQLite runs it in 0.02 ms). So the statements of every pass (the
cursor, one read of the ledger rows that matter, the quiet mark) keep their SQL text
(``eddymail.db.fastsql``), and the ledger is read once for both of its questions: which
stored messages still wait for their after-fetch action, and which UIDs are known.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import peewee

from eddymail.db import fastsql
from eddymail.db.models import Channel, ChannelCursor, LedgerEntry
from eddymail.services.ingest.records import PENDING, SKIPPED


def cursor_of(channel: Channel) -> ChannelCursor | None:
    """The channel's cursor for its current folder (``None`` before the first connection)."""
    return fastsql.first(ChannelCursor, channel=channel.id, folder=channel.folder)


def search_from(cursor: ChannelCursor, uidnext: int | None) -> int | None:
    """The lowest UID a pass must search for, or ``None`` when it need not search at all.

    Every message below the cursor's ``quiet_uidnext`` was in the ledger when it was noted
    (:func:`note_quiet`), and UIDs only grow: while the folder's UIDNEXT is still that
    number nothing is new; after it, only UIDs from it on can be.
    """
    quiet = cursor.quiet_uidnext
    if quiet is None or uidnext is None or quiet > uidnext:  # unknown, or a server gone odd
        quiet = 0
    if quiet == uidnext:
        return None
    return max(cursor.baseline_uid + 1, quiet)


@dataclass
class LedgerView:
    """The ledger rows of one folder a pass needs, by UID."""

    #: Stored, but the server was not told yet (a run stopped between the two).
    unfinished: list[int] = field(default_factory=list)
    #: Chosen at the first connection and not taken yet.
    pending: set[int] = field(default_factory=set)
    #: Any other row from the searched UID on: known, not to be taken again.
    known: set[int] = field(default_factory=set)


def ledger_of(channel: Channel, uidvalidity: int, first: int | None) -> LedgerView:
    """The folder's pending and unfinished rows, and (unless ``first`` is ``None``) every
    row from UID ``first`` on, in one statement."""
    params: list[object] = [channel.id, channel.folder, uidvalidity, PENDING, PENDING,
                            SKIPPED]
    if first is not None:
        params.append(first)

    def build() -> peewee.Query:
        wanted = (LedgerEntry.status == PENDING) | (
            ~LedgerEntry.server_done & (LedgerEntry.status != PENDING)
            & (LedgerEntry.status != SKIPPED))
        if first is not None:
            wanted |= LedgerEntry.uid >= first
        return LedgerEntry.select(LedgerEntry.uid, LedgerEntry.status,
                                  LedgerEntry.server_done).where(
            (LedgerEntry.channel == channel.id) & (LedgerEntry.folder == channel.folder)
            & (LedgerEntry.uidvalidity == uidvalidity) & wanted)

    view = LedgerView()
    rows = fastsql.execute(("fetch ledger view", first is not None), build, params)
    for uid, status, server_done in rows.fetchall():
        if status == PENDING:
            view.pending.add(uid)
            continue
        if not server_done and status != SKIPPED:
            view.unfinished.append(uid)
        if first is not None and uid >= first:
            view.known.add(uid)
    view.unfinished.sort()
    return view


def note_quiet(channel: Channel, cursor: ChannelCursor, uidnext: int | None) -> None:
    """After a pass that left nothing behind, note the UIDNEXT its SELECT reported: every
    message below it is in the ledger now. Not with ``unread_only``: a message read by then
    was left out, and is taken if someone marks it unread again."""
    if uidnext is None or channel.unread_only or cursor.quiet_uidnext == uidnext:
        return
    cursor.quiet_uidnext = uidnext
    fastsql.update(ChannelCursor, cursor.id, quiet_uidnext=uidnext)
