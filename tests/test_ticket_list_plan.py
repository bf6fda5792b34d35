"""``ticket list`` reads its first page from an index, never by scanning messages.

The figures are in ``bench/ticket_list.py``; this test guards the plan behind them. It records
the SQL that ``list_tickets`` actually sends and asks SQLite for its ``EXPLAIN QUERY PLAN``:
the ticket table must be read through an index ordered by ``last_activity_at`` (so the page
stops after LIMIT rows, with no "USE TEMP B-TREE FOR ORDER BY" that sorts every ticket) and
the message table must not be touched at all. The database is not ``ANALYZE``d, like one that
grew through ``fetch``; SQLite then plans from the schema alone, so a small database gets the
same plan as a big one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import peewee
import pytest

from eddymail.db.connection import close_database, open_database
from eddymail.services.tickets.queries import list_tickets
from tests.mailfactory import make_mail

DEPARTMENTS = ("Support", "Billing", "Sales")


@pytest.fixture
def helpdesk_database(eddymail, database_path: Path, tmp_path: Path) -> Iterator[peewee.Database]:
    """A small helpdesk built through the CLI: three departments, tickets in every status,
    follow-up messages; then the same file opened in this process."""
    for name in DEPARTMENTS:
        eddymail("department", "add", name)
    mails = tmp_path / "mails"
    mails.mkdir()
    for number in range(9):
        source = mails / f"{number}.eml"
        source.write_bytes(make_mail(f"Question {number}", body=f"Problem number {number}.\n",
                                     sender=f"Customer {number} <c{number}@customer.example>"))
        department = DEPARTMENTS[number % len(DEPARTMENTS)]
        eddymail("ingest", "--no-notify", "--department", department, str(source))
    for ticket in ("1", "2", "3"):
        eddymail("ticket", "note", ticket, "-m", "Looked into it.")
    for ticket in ("2", "5", "7"):
        eddymail("ticket", "close", ticket)
    database = open_database(f"sqlite:///{database_path}")
    yield database
    close_database()


def recorded_statements(database: peewee.Database, monkeypatch: pytest.MonkeyPatch,
                        **filters: Any) -> tuple[list[Any], list[tuple[str, tuple[Any, ...]]]]:
    """Call ``list_tickets(**filters)`` and return its rows and every statement it executed."""
    recorded: list[tuple[str, tuple[Any, ...]]] = []
    original = database.execute_sql

    def execute_sql(sql: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
        recorded.append((sql, tuple(params or ())))
        return original(sql, params, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(database, "execute_sql", execute_sql)
        rows = list_tickets(**filters)
    return rows, recorded


def query_plan(database: peewee.Database, sql: str, params: tuple[Any, ...]) -> list[str]:
    """The ``detail`` column of SQLite's EXPLAIN QUERY PLAN, one entry per step."""
    return [row[3] for row in database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params)]


def index_columns(database: peewee.Database, index: str) -> list[str]:
    """The columns of an index, in order."""
    return [row[2] for row in database.execute_sql(f'PRAGMA index_info("{index}")')]


CASES = [
    pytest.param({}, id="first-page"),
    pytest.param({"department": "Billing"}, id="department"),
    pytest.param({"status": "all"}, id="status-all"),
    pytest.param({"priority": "normal", "status": "all"}, id="priority"),
]


@pytest.mark.parametrize("filters", CASES)
def test_first_page_reads_tickets_by_index_and_never_scans_messages(
    helpdesk_database: peewee.Database, monkeypatch: pytest.MonkeyPatch, filters: dict[str, Any]
) -> None:
    database = helpdesk_database
    rows, statements = recorded_statements(database, monkeypatch, **filters)

    assert rows, "the case must list something, or its plan proves little"
    activity = [(row.last_activity_at, row.id) for row in rows]
    assert activity == sorted(activity, reverse=True)  # newest activity first

    # No statement of the listing touches the message table (message_count is a column).
    assert not [sql for sql, _ in statements if re.search(r'\bFROM "message"|"message" AS', sql)]
    ticket_queries = [(sql, params) for sql, params in statements
                      if re.search(r'FROM "ticket" AS "(\w+)"', sql)]
    assert len(ticket_queries) == 1, statements
    sql, params = ticket_queries[0]
    alias = re.search(r'FROM "ticket" AS "(\w+)"', sql).group(1)
    plan = query_plan(database, sql, params)
    shown = "\n".join(plan)

    assert not [line for line in plan if "TEMP B-TREE" in line], shown
    assert not [line for line in plan if re.search(r"\bmessage\b", line)], shown
    ticket_steps = [line for line in plan if re.match(rf"(SCAN|SEARCH) {alias}\b", line)]
    assert len(ticket_steps) == 1, shown
    used = re.match(rf"(?:SCAN|SEARCH) {alias} USING (?:COVERING )?INDEX (\w+)", ticket_steps[0])
    assert used, f"the ticket table is read without an index:\n{shown}"
    columns = index_columns(database, used.group(1))
    assert "last_activity_at" in columns, f"{used.group(1)} is on {columns}:\n{shown}"
    # Columns before last_activity_at must be pinned by equality, or the index order is not
    # the page order (the missing TEMP B-TREE above says SQLite agrees).
    leading = columns[: columns.index("last_activity_at")]
    for column in leading:
        assert f"{column}=?" in ticket_steps[0], shown


def test_plan_check_catches_a_listing_that_sorts_every_ticket(
    helpdesk_database: peewee.Database,
) -> None:
    """The assertions above can fail: an order no index provides shows a TEMP B-TREE."""
    plan = query_plan(helpdesk_database,
                      'SELECT "id" FROM "ticket" ORDER BY "subject" DESC LIMIT ?', (50,))
    assert any("TEMP B-TREE" in line for line in plan)
    plan = query_plan(helpdesk_database,
                      'SELECT "ticket_id" FROM "message" WHERE "body_text" LIKE ?', ("%x%",))
    assert any(re.match(r"SCAN message\b(?! USING)", line) for line in plan), plan
