"""Threading a reply reads the mail we sent by index, never by scanning a table.

Every reply names what it answers (In-Reply-To, References); ``find_thread`` looks those
Message-IDs up among our messages, the outbox and the stored incoming mail. This test records
the SQL it really sends for replies of several shapes and asks SQLite for each statement's
``EXPLAIN QUERY PLAN``: the ``message`` and ``outbox_item`` tables must be searched through an
index. The database is not ``ANALYZE``d, so SQLite plans from the schema alone and a small
database gets the plan of a big one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest

from eddymail.db.connection import close_database, open_database
from eddymail.mail.message.parse import parse_message
from eddymail.services.ingest.threads import find_thread
from tests.mailfactory import make_mail

LOOKED_UP = ("message", "outbox_item")


@pytest.fixture
def database(eddymail, database_path: Path) -> Iterator[peewee.Database]:
    eddymail("init")
    yield open_database(f"sqlite:///{database_path}")
    close_database()


def plans_of_find_thread(database: peewee.Database, monkeypatch: pytest.MonkeyPatch,
                         raw: bytes) -> list[tuple[str, list[str]]]:
    """Each statement ``find_thread`` sends for ``raw``, with SQLite's plan for it."""
    recorded: list[tuple[str, tuple[Any, ...]]] = []
    original = database.execute_sql

    def execute_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        recorded.append((sql, tuple(params or ())))
        return original(sql, params, *args, **kwargs)

    parsed = parse_message(raw)
    with monkeypatch.context() as patch:
        patch.setattr(database, "execute_sql", execute_sql)
        find_thread(parsed, "[#{id}]")
    return [(sql, [row[3] for row in original(f"EXPLAIN QUERY PLAN {sql}", params)])
            for sql, params in recorded]


def full_scans(plan: list[str], name: str) -> list[str]:
    """Steps that read table ``name`` (or its alias in the statement) without an index."""
    return [step for step in plan if re.match(rf"SCAN {name}\b(?! USING)", step)]


REPLIES = [
    pytest.param({"in_reply_to": "<a1@help.example>"}, id="in-reply-to"),
    pytest.param({"references": "<r1@help.example> <r2@help.example> <r3@help.example>"},
                 id="references"),
    pytest.param({"in_reply_to": "<x@help.example>", "references": "<y@help.example>"},
                 id="both"),
    pytest.param({"in_reply_to": "<ещё@пример.рф>"}, id="non-ascii-id"),
]


@pytest.mark.parametrize("headers", REPLIES)
def test_a_reply_finds_our_mail_by_index(database: peewee.Database,
                                         monkeypatch: pytest.MonkeyPatch,
                                         headers: dict[str, str]) -> None:
    statements = plans_of_find_thread(database, monkeypatch, make_mail("Re: help", **headers))

    looked_in = set()
    for sql, plan in statements:
        found = re.search(r'FROM "(message|outbox_item)"(?: AS "(\w+)")?', sql)
        if found is None:
            continue
        table, alias = found.groups()
        looked_in.add(table)
        assert not full_scans(plan, alias or table), (sql, plan)
    assert looked_in == set(LOOKED_UP), statements  # both tables are asked, or this proves little


def test_the_plan_check_sees_a_scan(database: peewee.Database) -> None:
    """``full_scans`` can fail: a lookup by a column no index leads with is a SCAN."""
    plan = [row[3] for row in database.execute_sql(
        'EXPLAIN QUERY PLAN SELECT "ticket_id" FROM "outbox_item" WHERE "mail_from" IN (?, ?)',
        ("a", "b"))]
    assert full_scans(plan, "outbox_item"), plan
    plan = [row[3] for row in database.execute_sql(
        'EXPLAIN QUERY PLAN SELECT "ticket_id" FROM "outbox_item" WHERE "message_id" IN (?, ?)',
        ("a", "b"))]
    assert not full_scans(plan, "outbox_item"), plan
