"""The full-text index of ticket messages, for SQLite (FTS5) and PostgreSQL (tsvector).

One entry per message that belongs to a ticket, with three weighted fields: the subject,
the people (sender, recipients, the agent who wrote it) and the body. The words are split and
folded by ``eddymail.searchtext`` before either engine sees them, so both find the same
tickets for the same query; the engines only store, match and rank.

- SQLite: ``search_message`` is a contentless FTS5 table (rowid = message id): the folded
  words are not kept twice, only the index. Messages never change after they are written,
  so an entry is never updated; ``clear`` empties the whole table for a rebuild.
- PostgreSQL: ``search_message(message_id, document tsvector)`` with a GIN index; the
  document is written as a tsvector literal, word positions and weights included.

The tables are created by migration 0008; entries are written in the transaction that
writes the message (``add``) and all at once by ``fill`` (the migration, ``search rebuild``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import peewee

from eddymail.searchtext import Term, folded_words

TABLE = "search_message"

Database = peewee.Database | peewee.DatabaseProxy

# Field weights: a word in the subject says most about a ticket, one in the body least
# (SQLite: the bm25() weights migration 0008 sets as the table's rank).
POSTGRES_LABELS = ("A", "B", "D")  # ts_rank's default weights: A 1.0, B 0.4, D 0.1
MAX_POSITION = 16383  # PostgreSQL keeps word positions up to this


@dataclass(frozen=True)
class IndexedText:
    """What the index holds for one message, as folded words per field."""

    subject: list[str]
    people: list[str]
    body: list[str]


def message_text(*, direction: str, automatic: str | None, subject: str, from_address: str,
                 from_name: str, author_name: str, to: Iterable[dict] | None,
                 cc: Iterable[dict] | None, bcc: Iterable[dict] | None,
                 body_text: str) -> IndexedText | None:
    """The indexed form of a message; None for the thread's own events (moved, closed)."""
    if direction == "system" and not automatic:  # a bounce is kept, "X closed it" is not
        return None
    people = [from_address, from_name, author_name]
    for entry in [*(to or []), *(cc or []), *(bcc or [])]:
        people += [str(entry.get("address", "")), str(entry.get("name", ""))]
    return IndexedText(subject=folded_words(subject),
                       people=folded_words(" ".join(part for part in people if part)),
                       body=folded_words(body_text))


def is_postgresql(database: Database) -> bool:
    """Whether ``database`` (or the engine behind a proxy) is PostgreSQL."""
    engine = database.obj if isinstance(database, peewee.DatabaseProxy) else database
    return isinstance(engine, peewee.PostgresqlDatabase)


def add(database: Database, message_id: int, text: IndexedText) -> None:
    """Index one message (once: a message is never indexed again except by a rebuild)."""
    if is_postgresql(database):
        database.execute_sql("INSERT INTO search_message (message_id, document) "
                             "VALUES (%s, CAST(%s AS tsvector))",
                             (message_id, tsvector_literal(text)))
    else:
        database.execute_sql("INSERT INTO search_message (rowid, subject, people, body) "
                             "VALUES (?, ?, ?, ?)",
                             (message_id, " ".join(text.subject), " ".join(text.people),
                              " ".join(text.body)))


def clear(database: Database) -> None:
    """Remove every entry (the first step of a rebuild)."""
    if is_postgresql(database):
        database.execute_sql("DELETE FROM search_message")
    else:
        # A contentless table cannot delete rows one by one without their old text.
        database.execute_sql("INSERT INTO search_message (search_message) VALUES ('delete-all')")


_FILL_COLUMNS = ("id", "direction", "automatic", "subject", "from_address", "from_name",
                 "author_name", "to", "cc", "bcc", "body_text")


def fill(database: Database, *, after: int = 0, until: int | None = None, batch: int = 500,
         progress: Callable[[int], None] = lambda done: None) -> int:
    """Index the ticket messages with ``after < id <= until`` in batches; how many.

    Reads the table as migration 0008 knows it, so the migration can use this too. Each
    batch is a transaction of its own (a savepoint inside the caller's), so a long rebuild
    does not keep a fetch waiting for the database for its whole length.
    """
    message = peewee.Table("message")
    done = 0
    while True:
        query = (message.select(*(getattr(message.c, column) for column in _FILL_COLUMNS))
                 .where(message.c.ticket_id.is_null(False), message.c.id > after,
                        *([message.c.id <= until] if until is not None else []))
                 .order_by(message.c.id).limit(batch).tuples())
        rows = list(query.bind(database))
        if not rows:
            return done
        with database.atomic():
            for row in rows:
                values = dict(zip(_FILL_COLUMNS, row, strict=True))
                text = message_text(
                    direction=values["direction"], automatic=values["automatic"],
                    subject=values["subject"] or "", from_address=values["from_address"] or "",
                    from_name=values["from_name"] or "", author_name=values["author_name"] or "",
                    to=_addresses(values["to"]), cc=_addresses(values["cc"]),
                    bcc=_addresses(values["bcc"]), body_text=values["body_text"] or "")
                if text is not None:
                    add(database, values["id"], text)
                    done += 1
        after = rows[-1][0]
        progress(done)


def _addresses(stored: Any) -> list[dict]:
    try:
        value = json.loads(stored) if isinstance(stored, str) else stored
    except ValueError:
        return []
    return [entry for entry in value or [] if isinstance(entry, dict)]


def tsvector_literal(text: IndexedText) -> str:
    """The PostgreSQL tsvector of a message: each word with its positions and field weight.

    Fields are one position apart, so a phrase never runs from the subject into the people.
    """
    positions: dict[str, list[str]] = {}
    position = 0
    for label, field_words in zip(POSTGRES_LABELS, (text.subject, text.people, text.body),
                                  strict=True):
        for word in field_words:
            position += 1
            positions.setdefault(word, []).append(f"{min(position, MAX_POSITION)}{label}")
        position += 1
    return " ".join(f"{_quoted(word)}:{','.join(spots[:256])}"
                    for word, spots in positions.items())


def _quoted(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"


# --- matching -------------------------------------------------------------------------------


def fts5_expression(terms: list[Term]) -> str:
    """An FTS5 MATCH expression: every term, each a quoted phrase (no operator can leak in)."""
    return " AND ".join('"' + " ".join(term.words).replace('"', '""') + '"'
                        + ("*" if term.prefix else "") for term in terms)


def tsquery_literal(terms: list[Term]) -> str:
    """A PostgreSQL tsquery: every term, words of a phrase next to each other (``<->``)."""
    parts = []
    for term in terms:
        words = [_quoted(word) for word in term.words]
        if term.prefix:
            words[-1] += ":*"
        parts.append("(" + " <-> ".join(words) + ")")
    return " & ".join(parts)


def count_matches(database: Database, terms: list[Term], *, most: int | None = None) -> int:
    """How many indexed messages match, counting no further than ``most`` (read from the
    index alone: no ranking, no rows)."""
    if is_postgresql(database):  # LIMIT NULL: no limit
        cursor = database.execute_sql(
            "SELECT count(*) FROM (SELECT 1 FROM search_message "
            "WHERE document @@ CAST(%s AS tsquery) LIMIT %s) AS found",
            (tsquery_literal(terms), most))
    else:  # LIMIT -1: no limit
        cursor = database.execute_sql(
            "SELECT count(*) FROM (SELECT 1 FROM search_message "
            "WHERE search_message MATCH ? LIMIT ?)",
            (fts5_expression(terms), -1 if most is None else most))
    return int(cursor.fetchone()[0])


def matching_messages(database: Database, terms: list[Term]) -> list[int]:
    """The ids of the indexed messages that match (from the index alone, no ranking)."""
    if is_postgresql(database):
        cursor = database.execute_sql(
            "SELECT message_id FROM search_message WHERE document @@ CAST(%s AS tsquery)",
            (tsquery_literal(terms),))
    else:
        cursor = database.execute_sql(
            "SELECT rowid FROM search_message WHERE search_message MATCH ?",
            (fts5_expression(terms),))
    return [row[0] for row in cursor.fetchall()]


def ticket_has_match(database: Database, terms: list[Term],
                     ticket_id: peewee.Node) -> peewee.Node:
    """``EXISTS`` (a message of the ticket ``ticket_id`` matches): a condition for a ticket
    query that walks tickets in its own order (newest first) and stops at its LIMIT.

    Each ticket's messages are found by their ticket index and each is looked up in the
    full-text index by its key, so a query that matches half the mail costs a page's worth
    of lookups, not a pass over every match.
    """
    message = peewee.Table("message").alias("matching_message")
    if is_postgresql(database):
        entries = peewee.Table(TABLE).alias("matching_entry")
        found = peewee.Expression(entries.c.document, "@@",
                                  peewee.Value(tsquery_literal(terms)).cast("tsquery"))
        key = entries.c.message_id
    else:
        entries = peewee.Table(TABLE)
        found = peewee.Expression(getattr(entries.c, TABLE), "MATCH", fts5_expression(terms))
        key = entries.c.rowid
    return peewee.fn.EXISTS(
        message.select(peewee.SQL("1")).join(entries, on=(key == message.c.id))
        .where(message.c.ticket_id == ticket_id, found))


def matching_tickets(database: Database, terms: list[Term]) -> peewee.Select:
    """A subquery of the ids of the tickets with a matching message (for ``IN``): every
    match is read once from the index, none is ranked."""
    message = peewee.Table("message")
    if is_postgresql(database):
        entries = peewee.Table(TABLE)
        return (entries.select(message.c.ticket_id)
                .join(message, on=(message.c.id == entries.c.message_id))
                .where(peewee.Expression(entries.c.document, "@@", peewee.Value(
                    tsquery_literal(terms)).cast("tsquery"))))
    entries = peewee.Table(TABLE)
    return (entries.select(message.c.ticket_id)
            .join(message, on=(message.c.id == entries.c.rowid))
            .where(peewee.Expression(getattr(entries.c, TABLE), "MATCH",
                                     fts5_expression(terms))))


def best_matches(database: Database, terms: list[Term]) -> peewee.Select:
    """A subquery: for every ticket with a matching message, the best one.

    Columns ``ticket_id``, ``message_id`` and ``score`` (higher is better). It reads only the
    index entries that match (and their messages by key), never every message.
    """
    message = peewee.Table("message")
    if is_postgresql(database):
        entries = peewee.Table(TABLE)
        query = peewee.Value(tsquery_literal(terms)).cast("tsquery")
        score = peewee.fn.ts_rank(entries.c.document, query)
        return (entries.select(message.c.ticket_id.alias("ticket_id"),
                               entries.c.message_id.alias("message_id"), score.alias("score"))
                .join(message, on=(message.c.id == entries.c.message_id))
                .where(peewee.Expression(entries.c.document, "@@", query),
                       message.c.ticket_id.is_null(False))
                .distinct(message.c.ticket_id)
                .order_by(message.c.ticket_id, score.desc()))
    entries = peewee.Table(TABLE)
    # The hidden ``rank`` column is bm25() with the weights migration 0008 configured; unlike
    # a bm25() call it may be aggregated. With one max() in the select list, SQLite takes
    # message_id from the row that gave it.
    return (entries.select(message.c.ticket_id.alias("ticket_id"),
                           entries.c.rowid.alias("message_id"),
                           peewee.fn.max(entries.c.rank * -1).alias("score"))
            .join(message, on=(message.c.id == entries.c.rowid))
            .where(peewee.Expression(getattr(entries.c, TABLE), "MATCH",
                                     fts5_expression(terms)),
                   message.c.ticket_id.is_null(False))
            .group_by(message.c.ticket_id))
