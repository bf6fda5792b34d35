"""`ticket list --search`: the full-text index, on SQLite and on the private PostgreSQL.

Every test runs twice, once per engine, through the real CLI: the same query must find the
same tickets on both (the words are folded by eddymail, not by the engine).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.mailfactory import make_mail


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, eddymail, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI on a fresh database of each engine (PostgreSQL: migrated by ``db migrate``)."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        monkeypatch.setenv("EDDYMAIL_DATABASE_URL", url)
        eddymail("db", "migrate")
    eddymail("department", "add", "Support")
    return request.param


@pytest.fixture
def deliver(eddymail, tmp_path: Path) -> Callable[..., dict]:
    """Ingest one mail built by ``make_mail(**headers)``; its outcome."""

    def deliver_one(subject: str, body: str = "Hello.\n", **headers: str) -> dict:
        raw = make_mail(subject, body=body, **headers)
        path = tmp_path / f"{hashlib.sha256(raw).hexdigest()[:16]}.eml"
        path.write_bytes(raw)
        return eddymail.json("ingest", "--department", "Support", str(path))["messages"][0]

    return deliver_one


def found(eddymail, query: str, *options: str) -> list[int]:
    """The ticket numbers ``ticket list --search QUERY`` gives, in its order."""
    listing = eddymail.json("ticket", "list", "--status", "all", "--search", query, *options)
    return [ticket["id"] for ticket in listing["tickets"]]


def test_case_is_folded_for_cyrillic_and_latin(eddymail, engine, deliver):
    printer = deliver("Принтер не печатает", "Добрый день! ПРИНТЕР в бухгалтерии молчит.\n")
    invoice = deliver("INVOICE 2024-17", "Please resend the Invoice.\n")
    deliver("Unrelated", "Nothing to see here.\n")
    for query in ("принтер", "Принтер", "ПРИНТЕР", "пРиНтЕр"):
        assert found(eddymail, query) == [printer["ticket_id"]], query
    for query in ("invoice", "INVOICE", "Invoice", "iNvOiCe"):
        assert found(eddymail, query) == [invoice["ticket_id"]], query
    assert found(eddymail, "бухгалтерии") == [printer["ticket_id"]]
    assert found(eddymail, "бухгалтерия") == []  # words are whole words: no stemming


def test_yo_and_ye_are_one_letter(eddymail, engine, deliver):
    tree = deliver("Ёлка в офисе", "Зелёная ёлка упала.\n")
    hedgehog = deliver("Про ежа", "Еж убежал из переговорной.\n")
    for query in ("елка", "ёлка", "ЁЛКА", "Елка", "зеленая", "зелёная"):
        assert found(eddymail, query) == [tree["ticket_id"]], query
    for query in ("ёж", "еж", "ЁЖ"):
        assert found(eddymail, query) == [hedgehog["ticket_id"]], query
    # й is a letter of its own, not и with a mark: "мой" must not find "мои".
    mine = deliver("Мой заказ", "Где мой заказ?\n")
    deliver("Мои заказы", "Где мои заказы?\n")
    assert found(eddymail, "мой") == [mine["ticket_id"]]


def test_latin_accents_and_prefixes(eddymail, engine, deliver):
    cafe = deliver("Café order", "Crème brûlée for the whole team.\n")
    assert found(eddymail, "cafe") == found(eddymail, "CAFÉ") == [cafe["ticket_id"]]
    assert found(eddymail, "brulee") == [cafe["ticket_id"]]
    assert found(eddymail, "bru*") == [cafe["ticket_id"]]
    assert found(eddymail, "bru") == []


def test_subject_body_requester_and_participants_are_searched(eddymail, engine, deliver):
    by_subject = deliver("Quarterly report", "See attachment.\n")
    by_body = deliver("Question", "The quarterly numbers look off.\n")
    by_person = deliver("Hi", "Call me.\n", sender="Борис Петров <boris@firm.example>",
                        cc="Olga Smirnova <olga@firm.example>")
    assert sorted(found(eddymail, "quarterly")) == sorted(
        [by_subject["ticket_id"], by_body["ticket_id"]])
    for query in ("boris@firm.example", "Петров", "петров", "olga", "SMIRNOVA",
                  "olga@firm.example"):
        assert found(eddymail, query) == [by_person["ticket_id"]], query
    # Every word must match, in any field of one message.
    assert found(eddymail, "quarterly numbers") == [by_body["ticket_id"]]
    assert found(eddymail, "quarterly nothing") == []
    # A phrase keeps its order.
    assert found(eddymail, '"numbers quarterly"') == []
    assert found(eddymail, '"quarterly numbers"') == [by_body["ticket_id"]]


@pytest.mark.parametrize(("rank_limit", "probe_share", "walk_rows", "how"), [
    (5000, 4, 50_000, "rank"), (-1, 0, 50_000, "walk"),
    (-1, 0, 0, "set"), (-1, 10**9, 50_000, "probe")])
def test_every_way_of_finding_matches_finds_the_same(eddymail, engine, deliver, monkeypatch,
                                                     rank_limit, probe_share, walk_rows, how):
    """Few matches are ranked; many come newest first, found by walking the tickets' messages
    against the matching ids (a set when the walk gets too long) or ticket by ticket."""
    from eddymail.services.tickets import search

    monkeypatch.setattr(search, "RANK_LIMIT", rank_limit)
    monkeypatch.setattr(search, "PROBE_SHARE", probe_share)
    monkeypatch.setattr(search, "WALK_ROWS", walk_rows)
    wanted = [deliver(f"Заказ {n}", f"Где мой ЗАКАЗ номер {n}? Жду ёлку.\n")["ticket_id"]
              for n in range(4)]
    other = deliver("Unrelated", "Nothing here.\n")["ticket_id"]
    # A ticket with two matching messages is listed once, in its place.
    eddymail("ticket", "note", str(wanted[2]), "-m", "ЗАКАЗ нашёлся, ёлку везут.")
    eddymail("ticket", "close", str(wanted[0]))
    assert search.strategy(search.query_terms("заказ")) == ("walk" if how == "set" else how)
    listing = eddymail.json("ticket", "list", "--status", "all", "--search", "заказ елку")
    tickets = listing["tickets"]
    assert sorted(t["id"] for t in tickets) == sorted(wanted) and other not in wanted
    for ticket in tickets:
        match = ticket["match"]
        assert (match["score"] is None) == (how != "rank")
        assert [match["snippet"][a:b] for a, b in match["highlights"]] == ["ЗАКАЗ", "ёлку"]
    if how != "rank":  # newest activity first, like the list without a search (closing is)
        assert [t["id"] for t in tickets] == [wanted[0], wanted[2], wanted[3], wanted[1]]
    active = eddymail.json("ticket", "list", "--search", "заказ", "--limit", "2")["tickets"]
    assert len(active) == 2 and wanted[0] not in [t["id"] for t in active]
    assert len(found(eddymail, "заказ", "--offset", "3")) == 1


def test_ranked_with_a_snippet(eddymail, engine, deliver):
    weak = deliver("Hello", "Somewhere deep in a long text " + "filler " * 40
                   + "the router is mentioned once.\n")
    strong = deliver("Router down", "The router is down, the router lights are off.\n")
    listing = eddymail.json("ticket", "list", "--search", "router")["tickets"]
    assert [t["id"] for t in listing] == [strong["ticket_id"], weak["ticket_id"]]
    scores = [t["match"]["score"] for t in listing]
    assert scores[0] > scores[1]
    far = listing[1]["match"]
    assert far["field"] == "body" and far["snippet"].startswith("…")
    assert "router is mentioned once." in far["snippet"]
    start, end = far["highlights"][0]
    assert far["snippet"][start:end] == "router"
    assert "\n" not in far["snippet"]
    # Without --search there is no match to describe.
    assert all(t["match"] is None for t in eddymail.json("ticket", "list")["tickets"])


def test_snippet_keeps_the_text_as_written(eddymail, engine, deliver):
    deliver("Ёлка", "Наша Зелёная ЁЛКА стоит в холле.\n")
    (ticket,) = eddymail.json("ticket", "list", "--search", "елка")["tickets"]
    snippet = ticket["match"]["snippet"]
    assert snippet == "Наша Зелёная ЁЛКА стоит в холле."
    assert [snippet[a:b] for a, b in ticket["match"]["highlights"]] == ["ЁЛКА"]


def test_filters_narrow_the_matches(eddymail, engine, deliver):
    first = deliver("Printer jam", "Paper stuck.\n")
    second = deliver("Printer toner", "Toner empty.\n")
    eddymail("ticket", "close", str(first["ticket_id"]))
    assert found(eddymail, "printer", "--status", "closed") == [first["ticket_id"]]
    assert sorted(found(eddymail, "printer")) == sorted([first["ticket_id"],
                                                          second["ticket_id"]])
    active = eddymail.json("ticket", "list", "--search", "printer")["tickets"]
    assert [t["id"] for t in active] == [second["ticket_id"]]
    assert len(found(eddymail, "printer", "--limit", "1")) == 1
    assert found(eddymail, "printer", "--limit", "1", "--offset", "2") == []


def test_replies_and_notes_are_indexed_in_their_transaction(eddymail, engine, deliver):
    ticket = deliver("Login problem", "I cannot log in.\n")["ticket_id"]
    eddymail("ticket", "note", str(ticket), "-m", "Checked: the LDAP account is locked.")
    assert found(eddymail, "ldap") == [ticket]
    # Our own events in the thread (closed, moved) are not searched.
    eddymail("ticket", "close", str(ticket))
    assert found(eddymail, "status") == []


def test_a_query_without_words_is_a_usage_error(eddymail, engine, deliver):
    deliver("Anything", "Text.\n")
    for query in ("", "!!!", "*", '""', "(((", "\\", "<->"):
        result = eddymail("ticket", "list", "--search", query, code=2)
        assert "Nothing to search for" in result.stderr
    result = eddymail("ticket", "list", "--search", " ".join(f"w{n}" for n in range(40)),
                      code=2)
    assert "Too many words" in result.stderr


def test_query_syntax_of_the_engines_cannot_be_injected(eddymail, engine, deliver):
    ticket = deliver("NEAR OR NOT AND", "Words that are operators: near or not and.\n")
    for query in ("NEAR(a b)", "'quoted' & ! <->", "col:word", "x:*", "^start",
                  '"unbalanced', "a +b", "'; DROP TABLE ticket; --"):
        eddymail.json("ticket", "list", "--search", query)  # no error, whatever it finds
    assert found(eddymail, "near or not and") == [ticket["ticket_id"]]
    assert found(eddymail, "NOT") == [ticket["ticket_id"]]
    assert found(eddymail, '"NEAR" "OR" "NOT"') == [ticket["ticket_id"]]  # quoted: words


def test_operators_are_refused_not_searched_as_words(eddymail, engine, deliver):
    # Every word must match: "printer OR scanner" would look for the word "or", and
    # "-spam" for "spam", the opposite of what was meant. Said, not silently done.
    deliver("Printer", "The printer or the scanner, not spam.\n")
    for query, named in (("printer OR scanner", "OR"), ("printer -spam", "-spam"),
                         ("NOT spam", "NOT"), ("printer AND -принтер", "-принтер, AND"),
                         ("a || b", "||")):
        result = eddymail("ticket", "list", "--search", query, code=2)
        assert f"Search has no operators ({named} in" in result.stderr, result.stderr
        assert "every word must match" in result.stderr
        assert result.stdout == ""
    for query in ("E-42 printer", "printer or scanner", "printer 2-3"):
        eddymail.json("ticket", "list", "--search", query)  # words, not operators


def test_rebuild_gives_the_same_results(eddymail, engine, deliver, database_path):
    tickets = [deliver(f"Сервер {n}", f"Сервер номер {n} перегрелся.\n")["ticket_id"]
               for n in range(3)]
    before = found(eddymail, "сервер")
    assert sorted(before) == sorted(tickets)
    if engine == "sqlite":  # an index lost by hand: the rebuild puts it back
        connection = sqlite3.connect(database_path)
        connection.execute("INSERT INTO search_message (search_message) VALUES ('delete-all')")
        connection.commit()
        connection.close()
        assert found(eddymail, "сервер") == []
    result = eddymail.json("search", "rebuild")["search"]
    assert result["messages"] == 3
    assert found(eddymail, "сервер") == before
    assert eddymail.json("search", "rebuild")["search"]["messages"] == 3  # not twice
    assert found(eddymail, "перегрелся") == before


def test_people_at_a_terminal_see_the_snippet(eddymail, engine, deliver):
    deliver("Wi-Fi", "The \x1b[2J\x1b]0;owned\x07 wifi in room 5 drops every hour.\n")
    result = eddymail("ticket", "list", "--search", "wifi")
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "\\x1b[2J" in result.stdout
    assert "drops every hour" in result.stdout


def test_the_upgrade_indexes_the_mail_already_stored(eddymail, engine, deliver, database_path,
                                                      request):
    """A database from before the index: migration 0008 creates it and fills it."""
    tickets = [deliver(f"Ключ {n}", f"Потерян ключ от кабинета {n}.\n")["ticket_id"]
               for n in range(3)]
    eddymail("ticket", "note", str(tickets[0]), "-m", "Ключ нашёлся у охраны.")
    undo = ("DROP TABLE search_message",
            "DELETE FROM schema_migration WHERE name = '0008_desk_search'")
    if engine == "sqlite":
        connection = sqlite3.connect(database_path)
        for statement in undo:
            connection.execute(statement)
        connection.commit()
        connection.close()
    else:
        server, url = request.getfixturevalue("postgres_server"), request.getfixturevalue(
            "postgres_url")
        for statement in undo:
            server.execute(statement, (), database=url.rpartition("/")[2])
        # A shared database waits for `db migrate`; SQLite upgrades itself when opened.
        assert "db migrate" in eddymail("ticket", "list", code=4).stderr
        eddymail("db", "migrate")
    assert sorted(found(eddymail, "ключ")) == sorted(tickets)
    assert found(eddymail, "нашелся охраны") == [tickets[0]]


def test_a_search_reads_the_index_not_every_message(eddymail, deliver, database_path,
                                                     monkeypatch):
    """The plan behind ``--search`` (SQLite): the FTS index finds the messages, each message
    and ticket is then read by its key; no table is scanned whole."""
    from eddymail.db.connection import close_database, open_database
    from tests.test_ticket_list_plan import query_plan, recorded_statements

    eddymail("department", "add", "Support")
    for number in range(5):
        deliver(f"Printer {number}", f"The printer number {number} jams.\n")
    database = open_database(f"sqlite:///{database_path}")
    try:
        rows, statements = recorded_statements(database, monkeypatch, search="printer jams",
                                               status="all")
        assert len(rows) == 5
        (sql, params), = [(sql, params) for sql, params in statements
                          if "MATCH" in sql and 'FROM "ticket"' in sql]
        plan = query_plan(database, sql, params)
    finally:
        close_database()
    shown = "\n".join(plan)
    assert any(line.startswith("SCAN") and "VIRTUAL TABLE INDEX" in line for line in plan), shown
    assert not [line for line in plan if re.match(r"SCAN (message|t\d)\b(?!.*VIRTUAL)", line)
                and "SCAN hits" not in line], shown
    assert any(re.match(r"SEARCH \w+ USING INTEGER PRIMARY KEY", line) for line in plan), shown
