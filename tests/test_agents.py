"""Agents: the list, who is acting (``--as``, ``$EDDYMAIL_AGENT``, the config), assignment,
the ticket history, and the upgrade of free-text assignees."""

from __future__ import annotations

import getpass
import sqlite3

import peewee
import pytest

from eddymail.db import migrations
from eddymail.db.connection import database_proxy
from tests.mailfactory import make_mail


@pytest.fixture
def desk(eddymail, tmp_path):
    """Support and Sales, two tickets in Support (ingested from files, no mail server)."""
    eddymail("department", "add", "Support")
    eddymail("department", "add", "Sales")
    for number, subject in enumerate(("Printer on fire", "Invoice missing"), start=1):
        path = tmp_path / f"{number}.eml"
        path.write_bytes(make_mail(subject, sender=f"Customer {number} <c{number}@x.example>"))
        eddymail("ingest", "--department", "Support", "--no-notify", str(path))
    return eddymail


def add_agents(eddymail):
    eddymail("agent", "add", "anna", "--name", "Anna Petrova", "--email", "anna@staff.example",
             "--department", "Support", "--signature", "Anna Petrova\\nSupport engineer")
    eddymail("agent", "add", "bob", "--name", "Bob Builder", "--department", "Support",
             "--department", "Sales")


def test_agent_add_list_show_edit_remove(desk):
    add_agents(desk)
    (anna, bob) = desk.json("agent", "list")["agents"]
    assert (anna["handle"], anna["name"], anna["email"], anna["departments"]) == (
        "anna", "Anna Petrova", "anna@staff.example", ["Support"])
    assert anna["signature"] == "Anna Petrova\nSupport engineer"
    assert (anna["notify_new_tickets"], anna["notify_replies"], anna["notify_assigned"],
            anna["delivery"], anna["digest_minutes"]) == (True, True, True, "immediate", 60)
    assert bob["departments"] == ["Sales", "Support"] and bob["email"] == ""
    assert [a["handle"] for a in desk.json("agent", "list", "--department", "Sales")[
        "agents"]] == ["bob"]
    edited = desk.json("agent", "edit", "Bob Builder", "--email", "Bob@Staff.Example",
                       "--remove-department", "Support", "--delivery", "digest",
                       "--digest-every", "2h", "--no-notify-new")["agent"]
    assert (edited["email"], edited["departments"], edited["delivery"],
            edited["digest_minutes"], edited["notify_new_tickets"]) == (
        "Bob@staff.example", ["Sales"], "digest", 120, False)
    shown = desk("agent", "show", "bob").stdout
    assert "customer replies, assignments (digest every 2 h)" in shown
    renamed = desk.json("agent", "edit", "bob", "--handle", "robert")["agent"]
    assert renamed["handle"] == "robert"
    assert desk.json("agent", "remove", "robert", "--as", "anna") == {
        "removed": "robert", "unassigned_tickets": []}
    assert [a["handle"] for a in desk.json("agent", "list")["agents"]] == ["anna"]


@pytest.mark.parametrize(("args", "message", "code"), [
    (["agent", "add", "two words"], "is not allowed", 2),
    (["agent", "add", "x" * 65], "is not allowed", 2),
    (["agent", "add", "anna"], "already exists", 1),
    (["agent", "add", "ANNA"], "already exists", 1),
    (["agent", "add", "carl", "--email", "not an address"], "not a valid email", 2),
    (["agent", "add", "carl", "--email", "a@b.example, c@d.example"], "not a valid", 2),
    (["agent", "add", "carl", "--department", "Nowhere"], "No department", 1),
    (["agent", "add", "carl", "--name", "\x1b[2Jclear"], "one line", 2),
    (["agent", "add", "carl", "--digest-every", "soon"], "not a duration", 2),
    (["agent", "add", "carl", "--digest-every", "1"], "5 minutes to 7 days", 2),
    (["agent", "edit", "anna"], "Nothing to change", 2),
    (["agent", "show", "nobody"], "No agent 'nobody'", 1),
])
def test_agent_input_is_checked(desk, args, message, code):
    add_agents(desk)
    result = desk(*args, code=code)
    assert message in result.stderr
    assert len(desk.json("agent", "list")["agents"]) == 2


def test_handles_in_any_script_and_names_find_agents(desk):
    desk("agent", "add", "мария", "--name", "Мария Иванова", "--department", "Support")
    desk("agent", "add", "sam")
    assert desk.json("ticket", "assign", "1", "мария", "--as", "sam")["ticket"]["assignee"] == (
        "мария")
    assert desk.json("ticket", "assign", "2", "МАРИЯ ИВАНОВА", "--as", "sam")["ticket"][
        "assignee"] == "мария"


def test_without_agents_replies_act_unnamed_and_never_as_the_login_name(desk):
    # A team without agents: actions work, and the history does not say "root".
    desk("ticket", "note", "1", "-m", "Looked at it.")
    desk("ticket", "close", "1")
    history = desk.json("ticket", "show", "1")["ticket"]["history"]
    assert [(h["action"], h["agent"], h["actor"]) for h in history] == [
        ("note", None, "staff"), ("close", None, "staff")]
    shown = desk("ticket", "show", "1").stdout
    assert getpass.getuser() + ":" not in shown and "staff: added a note" in shown


def test_who_is_acting_is_checked_against_the_agent_list(desk, tmp_path, monkeypatch):
    desk("agent", "add", "anna", "--name", "Anna Petrova")
    # One agent: that is who acts.
    desk("ticket", "note", "1", "-m", "first")
    add_agents_rest = ["agent", "add", "bob", "--name", "Bob Builder"]
    desk(*add_agents_rest)
    # Several agents and nobody named: refused, with the ways to say it.
    refused = desk("ticket", "note", "1", "-m", "who?", code=2)
    assert "--as HANDLE, EDDYMAIL_AGENT" in refused.stderr
    unknown = desk("--as", "carl", "ticket", "close", "1", code=2)
    assert "No agent 'carl'" in unknown.stderr and "from --as" in unknown.stderr
    # The config names an agent by name; the environment overrides it; --as overrides both.
    config = tmp_path / "eddymail.toml"
    config.write_text('[agent]\nname = "Bob Builder"\n')
    monkeypatch.setenv("EDDYMAIL_CONFIG", str(config))
    desk("ticket", "note", "1", "-m", "from the config")
    monkeypatch.setenv("EDDYMAIL_AGENT", "anna")
    desk("ticket", "note", "1", "-m", "from the environment")
    desk("ticket", "note", "1", "-m", "from --as", "--as", "bob")
    monkeypatch.setenv("EDDYMAIL_AGENT", "nobody")
    wrong = desk("ticket", "note", "1", "-m", "x", code=2)
    assert "$EDDYMAIL_AGENT" in wrong.stderr
    notes = [(h["agent"], h["action"]) for h in desk.json("ticket", "show", "1")["ticket"][
        "history"]]
    assert notes == [("anna", "note"), ("bob", "note"), ("anna", "note"), ("bob", "note")]


def test_assign_list_filters_and_history(desk):
    add_agents(desk)
    assert desk.json("--as", "bob", "ticket", "assign", "1", "anna")["ticket"]["assignee"] == (
        "anna")
    assert desk.json("ticket", "assign", "2", "--me", "--as", "bob")["ticket"]["assignee"] == "bob"
    mine = desk.json("ticket", "list", "--mine", "--as", "anna")["tickets"]
    assert [(t["id"], t["assignee"], t["assignee_name"]) for t in mine] == [
        (1, "anna", "Anna Petrova")]
    assert [t["id"] for t in desk.json("ticket", "list", "--assignee", "Bob Builder")[
        "tickets"]] == [2]
    assert desk.json("ticket", "list", "--unassigned")["tickets"] == []
    desk("ticket", "assign", "2", "--unassign", "--as", "anna")
    assert [t["id"] for t in desk.json("ticket", "list", "--unassigned")["tickets"]] == [2]
    desk("ticket", "move", "1", "Sales", "--as", "anna")
    listed = desk("ticket", "list", "--status", "all").stdout
    assert "anna" in listed
    history = desk.json("ticket", "show", "1")["ticket"]["history"]
    assert [(h["agent"], h["action"], h["detail"]) for h in history] == [
        ("bob", "assign", {"from": None, "to": "anna"}),
        ("anna", "move", {"from": "Support", "to": "Sales"})]
    shown = desk("ticket", "show", "1").stdout
    assert "Bob Builder (bob): assigned it to anna" in shown
    assert "Anna Petrova (anna): moved it from Support to Sales" in shown
    assert "Assignee      Anna Petrova (anna)" in shown
    assert desk("ticket", "list", "--mine", "--unassigned", code=2).exit_code == 2


def test_removing_an_agent_unassigns_their_tickets_and_keeps_the_history(desk):
    add_agents(desk)
    desk("ticket", "assign", "1", "bob", "--as", "anna")
    desk("ticket", "note", "1", "-m", "Bob was here.", "--as", "bob")
    removed = desk.json("agent", "remove", "bob", "--as", "anna")
    assert removed == {"removed": "bob", "unassigned_tickets": [1]}
    ticket = desk.json("ticket", "show", "1")["ticket"]
    assert ticket["assignee"] is None
    assert [(h["actor"], h["action"]) for h in ticket["history"]] == [
        ("Anna Petrova (anna)", "assign"), ("bob", "note"), ("Anna Petrova (anna)", "unassign")]
    assert ticket["history"][-1]["detail"] == {"from": "bob", "reason": "agent removed"}


def test_upgrade_turns_free_text_assignees_into_agents(eddymail, database_path):
    database = peewee.SqliteDatabase(str(database_path))
    database_proxy.initialize(database)
    database.connect()
    migrations.apply_migrations(database, until="0003_postgresql_text_columns")
    database.execute_sql("INSERT INTO department (name, created_at) VALUES ('Support', "
                         "'2026-01-01 00:00:00')")
    for number, assignee in enumerate(["Anna Petrova", "Anna Petrova", "Иван Сидоров",
                                       "anna.petrova", None], start=1):
        database.execute_sql(
            "INSERT INTO ticket (subject, status, department_id, requester_address, assignee, "
            "awaiting_reply, message_count, created_at, last_activity_at) VALUES "
            "(?, 'open', 1, 'c@x.example', ?, 1, 0, '2026-01-01', '2026-01-01')",
            (f"ticket {number}", assignee))
    database.close()
    eddymail("init")
    agents = {a["handle"]: a["name"] for a in eddymail.json("agent", "list")["agents"]}
    assert agents == {"anna.petrova": "Anna Petrova", "anna.petrova-2": "anna.petrova",
                      "иван.сидоров": "Иван Сидоров"}
    by_ticket = {t["subject"]: t["assignee"] for t in eddymail.json(
        "ticket", "list", "--status", "all")["tickets"]}
    assert by_ticket == {"ticket 1": "anna.petrova", "ticket 2": "anna.petrova",
                         "ticket 3": "иван.сидоров", "ticket 4": "anna.petrova-2",
                         "ticket 5": None}
    columns = [row[1] for row in sqlite3.connect(database_path).execute(
        "PRAGMA table_info(ticket)")]
    assert "assignee" not in columns and "assignee_id" in columns
