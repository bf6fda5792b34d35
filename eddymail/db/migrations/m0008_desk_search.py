"""0008_desk_search: a full-text index of ticket messages, filled from the messages stored.

``ticket list --search`` used to scan every subject and body with LIKE, which was slow and,
on SQLite, blind to case outside ASCII ("Принтер" did not find "принтер"). See
``eddymail.db.searchindex`` for what the index holds. SQLite: a contentless FTS5 table (the
words are not stored twice). PostgreSQL: a tsvector per message with a GIN index; the
words come folded from eddymail, so the ``simple`` configuration (no stemming, no stop
words) is all the engine needs, and both engines match the same words.
"""

from __future__ import annotations

import peewee as pw

from eddymail.db import searchindex

SQLITE = (
    # unicode61 only splits on the spaces eddymail put between the folded words.
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_message USING fts5("
    "subject, people, body, content='', tokenize='unicode61 remove_diacritics 0')",
    # The rank of a match: bm25 with a word in the subject worth most, one in the body least.
    "INSERT INTO search_message (search_message, rank) VALUES ('rank', 'bm25(4.0, 2.0, 1.0)')",
)
POSTGRESQL = (
    "CREATE TABLE IF NOT EXISTS search_message ("
    "message_id integer PRIMARY KEY REFERENCES message (id) ON DELETE CASCADE, "
    "document tsvector NOT NULL)",
    "CREATE INDEX IF NOT EXISTS search_message_document ON search_message USING gin (document)",
)


def upgrade(database: pw.Database) -> None:
    """Create the index and put every message already stored into it."""
    for statement in (POSTGRESQL if searchindex.is_postgresql(database) else SQLITE):
        database.execute_sql(statement)
    searchindex.fill(database)
