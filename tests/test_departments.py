"""`eddymail department ...` through the real CLI and a real SQLite file."""

from __future__ import annotations


def test_add_list_show(eddymail):
    eddymail("department", "add", "Support")
    eddymail("department", "add", "Отдел продаж")
    listed = eddymail.json("department", "list")
    assert [d["name"] for d in listed["departments"]] == ["Support", "Отдел продаж"]
    assert listed["departments"][0] == {
        "id": 1, "name": "Support", "outgoing_channel": None, "outgoing_address": None,
        "channels": [], "open_tickets": 0, "tickets": 0,
        "created_at": listed["departments"][0]["created_at"],
    }
    assert listed["departments"][0]["created_at"].endswith("Z")
    shown = eddymail.json("department", "show", "отдел ПРОДАЖ")  # any case, any script
    assert shown["department"]["name"] == "Отдел продаж"


def test_empty_list_is_still_a_document(eddymail):
    assert eddymail.json("department", "list") == {"departments": []}
    assert "No departments yet" in eddymail("department", "list").stdout


def test_duplicate_name_is_refused_whatever_the_case(eddymail):
    eddymail("department", "add", "Support")
    result = eddymail("department", "add", "  SUPPORT ", code=1)
    assert "already exists" in result.stderr
    assert result.stdout == ""


def test_json_flag_before_the_subcommand(eddymail):
    eddymail("department", "add", "Support")
    result = eddymail("--json", "department", "list")
    assert result.stdout.lstrip().startswith("{")


def test_edit_rename_and_outgoing_channel(eddymail, support):
    support("mail", "--email", "help@example.com", "--host", "127.0.0.1",
            "--smtp-host", "127.0.0.1")
    eddymail("department", "add", "Billing")
    eddymail("channel", "add", "billing", "--department", "Billing", "--email", "b@example.com",
             "--protocol", "none")
    # A channel without SMTP cannot be a department's outgoing channel.
    result = eddymail("department", "edit", "Billing", "--outgoing-channel", "billing", code=2)
    assert "no outgoing (SMTP) settings" in result.stderr
    edited = eddymail.json("department", "edit", "Billing", "--name", "Accounting",
                           "--outgoing-channel", "mail")
    assert edited["department"]["name"] == "Accounting"
    assert edited["department"]["outgoing_channel"] == "mail"
    cleared = eddymail.json("department", "edit", "Accounting", "--outgoing-channel", "")
    assert cleared["department"]["outgoing_channel"] is None


def test_edit_needs_something_to_change(eddymail):
    eddymail("department", "add", "Support")
    assert "Nothing to change" in eddymail("department", "edit", "Support", code=2).stderr


def test_remove_is_refused_while_channels_remain(eddymail, support):
    support("mail", "--email", "help@example.com", "--protocol", "none", password=None)
    result = eddymail("department", "remove", "Support", code=1)
    assert "still has channels (mail)" in result.stderr
    assert "eddymail channel edit NAME --department OTHER" in result.stderr
    eddymail("channel", "remove", "mail", "--yes")
    eddymail("department", "remove", "Support")
    assert eddymail.json("department", "list") == {"departments": []}


def test_unknown_department(eddymail):
    result = eddymail("department", "show", "Nope", code=1)
    assert "No department named 'Nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_quiet_prints_nothing_on_success(eddymail):
    result = eddymail("-q", "department", "add", "Support")
    assert result.stdout == "" and result.stderr == ""
