"""`eddymail channel add|list|show|edit|remove|password|presets` through the real CLI."""

from __future__ import annotations

import re
import sqlite3

import keyring
import pytest

from tests.harness.keyring_backend import MemoryKeyring


def test_preset_fills_servers_and_prints_the_app_password_hint(eddymail, support):
    result = eddymail("channel", "add", "support", "--department", "Support",
                      "--email", "Help.Desk@GMAIL.com", "--password-stdin", input="app-pw\n")
    assert "Gmail needs an app password" in result.stderr
    assert "IMAP or POP access must be enabled" in result.stderr
    channel = eddymail.json("channel", "show", "support")["channel"]
    assert channel["email"] == "Help.Desk@gmail.com"
    assert channel["preset"] == "gmail"
    assert (channel["protocol"], channel["host"], channel["port"], channel["security"]) == (
        "imap", "imap.gmail.com", 993, "ssl")
    assert (channel["smtp_host"], channel["smtp_port"], channel["smtp_security"]) == (
        "smtp.gmail.com", 465, "ssl")
    assert channel["login"] == "Help.Desk@gmail.com"
    assert channel["smtp_login"] == "Help.Desk@gmail.com"
    assert channel["authserv_id"] == "mx.google.com"
    assert channel["password_source"] == "keyring"
    assert channel["outgoing_for_department"] is True


@pytest.mark.parametrize(("preset", "imap_host", "smtp_host"), [
    ("yandex", "imap.yandex.ru", "smtp.yandex.ru"),
    ("mailru", "imap.mail.ru", "smtp.mail.ru"),
    ("outlook", "outlook.office365.com", "smtp.office365.com"),
    ("yahoo", "imap.mail.yahoo.com", "smtp.mail.yahoo.com"),
    ("icloud", "imap.mail.me.com", "smtp.mail.me.com"),
    ("rambler", "imap.rambler.ru", "smtp.rambler.ru"),
    ("zoho", "imap.zoho.com", "smtp.zoho.com"),
])
def test_every_required_preset(support, preset, imap_host, smtp_host):
    added = support("c", "--email", "someone@company.example", "--preset", preset)
    assert added["channel"]["host"] == imap_host
    assert added["channel"]["smtp_host"] == smtp_host
    assert added["preset_hint"]


def test_yandex_detected_from_the_address_and_pop3(support):
    added = support("y", "--email", "shop@yandex.ru", "--protocol", "pop3")
    channel = added["channel"]
    assert channel["preset"] == "yandex"
    assert (channel["host"], channel["port"]) == ("pop.yandex.ru", 995)
    assert "app password" in added["preset_hint"]


def test_explicit_options_override_the_preset(support):
    channel = support("g", "--email", "x@gmail.com", "--preset", "gmail", "--security",
                      "starttls", "--smtp-port", "587", "--smtp-security", "starttls")["channel"]
    assert (channel["host"], channel["port"], channel["security"]) == ("imap.gmail.com", 143,
                                                                       "starttls")
    assert (channel["smtp_port"], channel["smtp_security"]) == (587, "starttls")


def test_presets_command_lists_providers_with_hints(eddymail):
    presets = eddymail.json("channel", "presets")["presets"]
    keys = {p["key"] for p in presets}
    assert {"gmail", "yandex", "mailru", "outlook", "yahoo", "icloud", "rambler", "zoho"} <= keys
    gmail = next(p for p in presets if p["key"] == "gmail")
    assert gmail["app_password"] is True and "app password" in gmail["hint"]
    assert gmail["imap"] == {"host": "imap.gmail.com", "port": 993, "security": "ssl"}
    assert "Yandex" in eddymail("channel", "presets").stdout


def test_password_goes_to_the_keyring_and_nowhere_else(eddymail, support, database_path,
                                                       memory_keyring, isolated_environment):
    secret = "Sup3r-Secret-Passw0rd"
    support("mail", "--email", "help@example.com", "--host", "127.0.0.1",
            "--smtp-host", "127.0.0.1", password=secret)
    assert keyring.get_password("eddymail", "mail") == secret
    # Not in the database file (WAL included) nor anywhere else under the test's directory.
    eddymail("channel", "list")
    for path in isolated_environment.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    rows = sqlite3.connect(database_path).execute("SELECT * FROM channel").fetchall()
    assert secret not in repr(rows)
    shown = eddymail("channel", "show", "mail")
    assert secret not in shown.stdout + shown.stderr


def test_password_is_never_a_command_line_argument(eddymail, support):
    result = eddymail("channel", "add", "x", "--department", "Support", "--email",
                      "a@example.com", "--host", "h", "--password", "pw", code=2)
    # click words it "No such option: --password" (8.2) or "No such option '--password'".
    assert re.search(r"No such option\W+--password\b(?!-)", result.stderr)


def test_no_terminal_and_no_password_option_is_a_usage_error(eddymail, support):
    result = eddymail("channel", "add", "x", "--department", "Support", "--email",
                      "a@example.com", "--host", "imap.example.com", code=2)
    assert "--password-stdin" in result.stderr
    assert eddymail.json("channel", "list") == {"channels": []}


def test_password_stdin_keeps_all_but_one_newline(eddymail, support, memory_keyring):
    support("m", "--email", "a@example.com", "--host", "h.example", password=" pw with spaces \n")
    assert keyring.get_password("eddymail", "m") == " pw with spaces \n"


def test_password_command_needs_no_keyring(eddymail, support, memory_keyring):
    added = support("cmd", "--email", "a@example.com", "--host", "h.example",
                    "--password-command", "pass show 'mail/a b'", password=None)
    assert added["channel"]["password_source"] == "command"
    assert added["channel"]["password_command"] == ["pass", "show", "mail/a b"]
    assert keyring.get_password("eddymail", "cmd") is None


def test_both_password_options_are_refused(eddymail, support):
    result = eddymail("channel", "add", "x", "--department", "Support", "--email",
                      "a@example.com", "--host", "h", "--password-command", "true",
                      "--password-stdin", input="pw\n", code=2)
    assert "not both" in result.stderr


def test_headless_host_without_keyring_exits_4_with_one_line(eddymail, support, monkeypatch):
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())
    result = eddymail("channel", "add", "x", "--department", "Support", "--email",
                      "a@example.com", "--host", "imap.example.com", "--password-stdin",
                      input="pw\n", code=4)
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1
    assert "PYTHON_KEYRING_BACKEND" in error_lines[0]
    assert "--password-command" in error_lines[0]
    assert "Traceback" not in result.stderr
    # All or nothing: no channel without a password was left behind.
    keyring.set_keyring(MemoryKeyring())
    assert eddymail.json("channel", "list") == {"channels": []}


def test_first_channel_with_smtp_becomes_the_outgoing_channel(eddymail, support):
    first = support("in-only", "--email", "a@example.com", "--host", "h.example")
    assert first["became_outgoing"] is False
    second = support("out", "--email", "b@example.com", "--host", "h.example",
                     "--smtp-host", "s.example")
    assert second["became_outgoing"] is True
    third = support("out2", "--email", "c@example.com", "--smtp-host", "s.example",
                    "--protocol", "none")
    assert third["became_outgoing"] is False
    department = eddymail.json("department", "show", "Support")["department"]
    assert department["outgoing_channel"] == "out"
    assert department["channels"] == ["in-only", "out", "out2"]


def test_validation_errors_are_clear(eddymail, support):
    cases = [
        (["--email", "not-an-address", "--host", "h"], "is not an e-mail address"),
        (["--email", "a@example.com", "--host", "h", "--port", "70000"], "out of range"),
        (["--email", "a@example.com", "--protocol", "imap"], "needs its server: --host"),
        (["--email", "a@example.com", "--host", "h", "--after-fetch", "move"], "--move-to"),
        (["--email", "a@example.com", "--host", "h", "--initial", "lots"], "--initial"),
        (["--email", "a@example.com", "--host", "h", "--ca-file", "/nonexistent.pem"],
         "does not exist"),
        (["--email", "a@example.com", "--preset", "nosuch"], "Unknown preset"),
    ]
    for options, message in cases:
        result = eddymail("channel", "add", "x", "--department", "Support", *options,
                          "--password-stdin", input="pw\n", code=None)
        assert result.exit_code in (1, 2), options
        assert message in result.stderr, (options, result.stderr)
    bad_name = eddymail("channel", "add", "bad name", "--department", "Support", "--email",
                        "a@example.com", "--protocol", "none", code=2)
    assert "is not allowed" in bad_name.stderr


def test_edit_changes_only_what_is_given_and_follows_default_ports(eddymail, support):
    support("m", "--email", "a@example.com", "--host", "imap.example.com",
            "--smtp-host", "smtp.example.com", "--folder", "Support")
    edited = eddymail.json("channel", "edit", "m", "--security", "starttls")["channel"]
    assert (edited["port"], edited["security"], edited["folder"]) == (143, "starttls", "Support")
    edited = eddymail.json("channel", "edit", "m", "--after-fetch", "move", "--move-to", "Done",
                           "--initial", "all", "--unread-only", "--disable")["channel"]
    assert (edited["after_fetch"], edited["move_to_folder"], edited["initial"],
            edited["unread_only"], edited["enabled"]) == ("move", "Done", "all", True, False)
    assert edited["host"] == "imap.example.com"


def test_rename_moves_the_keyring_entry(eddymail, support, memory_keyring):
    support("old", "--email", "a@example.com", "--host", "h.example", password="pw1")
    eddymail("channel", "edit", "old", "--name", "new")
    assert keyring.get_password("eddymail", "new") == "pw1"
    assert keyring.get_password("eddymail", "old") is None


def test_password_command_replaces_the_password(eddymail, support, memory_keyring):
    support("m", "--email", "a@example.com", "--host", "h.example", password="pw1")
    eddymail("channel", "password", "m", "--password-stdin", input="pw2\n")
    assert keyring.get_password("eddymail", "m") == "pw2"


def test_remove_deletes_the_password_and_unsets_roles(eddymail, support, memory_keyring):
    support("m", "--email", "a@example.com", "--host", "h.example", "--smtp-host", "s.example")
    eddymail("settings", "set", "system-channel", "m")
    eddymail("channel", "remove", "m", "--yes")
    assert keyring.get_password("eddymail", "m") is None
    assert eddymail.json("settings", "get", "system-channel")["setting"]["value"] == ""
    assert eddymail.json("department", "show", "Support")["department"]["outgoing_channel"] is None


def test_list_and_show_render_for_people(eddymail, support):
    support("m", "--email", "a@example.com", "--host", "imap.example.com",
            "--smtp-host", "smtp.example.com", "--display-name", "Help Desk")
    listed = eddymail("channel", "list").stdout
    assert "a@example.com" in listed and "Support" in listed
    shown = eddymail("channel", "show", "m").stdout
    assert "Help Desk <a@example.com>" in shown
    assert "in the keyring" in shown
