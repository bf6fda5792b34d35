"""`eddymail settings` and `eddymail log` through the real CLI."""

from __future__ import annotations

from datetime import timedelta

import pytest

from eddymail.db.models import utcnow
from eddymail.errors import MailServerError
from eddymail.services import errorlog


def test_settings_list_shows_defaults(eddymail):
    settings = {s["key"]: s for s in eddymail.json("settings", "list")["settings"]}
    assert settings["system-channel"]["value"] == ""
    assert settings["system-channel"]["is_default"] is True
    assert settings["language"]["value"] == "en"


def test_system_channel_set_get_reset(eddymail, support):
    support("notify", "--email", "noreply@example.com", "--smtp-host", "smtp.example.com",
            "--protocol", "none")
    assert eddymail("settings", "set", "system-channel", "notify").stdout.strip() == (
        "system-channel = notify")
    assert eddymail.json("settings", "get", "system-channel")["setting"]["value"] == "notify"
    assert eddymail.json("channel", "show", "notify")["channel"]["system_channel"] is True
    # Renaming the channel keeps the setting (it is stored by id, shown by name).
    eddymail("channel", "edit", "notify", "--name", "notifications")
    assert eddymail("settings", "get", "system-channel").stdout.strip() == "notifications"
    reset = eddymail.json("settings", "set", "system-channel", "")
    assert reset["setting"]["is_default"] is True


def test_system_channel_must_exist_and_be_able_to_send(eddymail, support):
    assert "No channel named 'ghost'" in eddymail("settings", "set", "system-channel", "ghost",
                                                   code=1).stderr
    support("incoming", "--email", "in@example.com", "--host", "imap.example.com")
    result = eddymail("settings", "set", "system-channel", "incoming", code=2)
    assert "no outgoing (SMTP) settings" in result.stderr


def test_language_is_validated(eddymail):
    assert eddymail.json("settings", "set", "language", "RU")["setting"]["value"] == "ru"
    assert "must be one of: en, ru" in eddymail("settings", "set", "language", "de",
                                                 code=2).stderr


def test_unknown_setting(eddymail):
    result = eddymail("settings", "get", "colour", code=1)
    assert "Unknown setting 'colour'" in result.stderr and "system-channel" in result.stderr


def _log_failure(channel_name: str | None, answer: str, *, age: timedelta = timedelta(0)):
    from eddymail.db.models import Channel, ErrorLogEntry

    channel = Channel.get_or_none(Channel.name == channel_name) if channel_name else None
    entry = errorlog.record_failure(
        channel=channel, operation="imap login",
        error=MailServerError("Login failed at imap.example.com:993.", operation="imap login",
                              answer=answer, hint="Wrong password?"),
        secrets=["hunter2"],
    )
    ErrorLogEntry.update(created_at=utcnow() - age).where(ErrorLogEntry.id == entry.id).execute()


@pytest.fixture
def open_db(database_path):
    from eddymail.db.connection import close_database, open_database

    open_database(f"sqlite:///{database_path}")
    yield
    close_database()


def test_log_filters_and_json(eddymail, support, open_db):
    support("a", "--email", "a@example.com", "--host", "imap.example.com")
    support("b", "--email", "b@example.com", "--host", "imap.example.com")
    _log_failure("a", "[AUTHENTICATIONFAILED] Authentication failed.", age=timedelta(days=3))
    _log_failure("b", "NO [AUTHENTICATIONFAILED] password hunter2 rejected")
    entries = eddymail.json("log")["entries"]
    assert [e["channel"] for e in entries] == ["b", "a"]  # newest first
    assert entries[0]["answer"] == "NO [AUTHENTICATIONFAILED] password [redacted] rejected"
    assert entries[0]["hint"] == "Wrong password?"
    assert entries[0]["operation"] == "imap login"
    assert entries[0]["time"].endswith("Z")
    assert [e["channel"] for e in eddymail.json("log", "--channel", "a")["entries"]] == ["a"]
    assert [e["channel"] for e in eddymail.json("log", "--since", "1d")["entries"]] == ["b"]
    assert len(eddymail.json("log", "--limit", "1")["entries"]) == 1
    table = eddymail("log").stdout
    assert "Authentication failed" in table


def test_log_redacts_base64_auth_form(open_db):
    import base64

    error = MailServerError("x", answer="AUTH PLAIN " + base64.b64encode(b"hunter2").decode())
    entry = errorlog.record_failure(channel=None, operation="smtp login", error=error,
                                    secrets=["hunter2"])
    assert "aHVudGVyMg" not in entry.answer and "[redacted]" in entry.answer


def test_log_empty_and_bad_since(eddymail):
    assert eddymail.json("log") == {"entries": []}
    assert "use 30m, 2h, 7d" in eddymail("log", "--since", "yesterday-ish", code=2).stderr
    assert "No channel named" in eddymail("log", "--channel", "nope", code=1).stderr


def test_parse_since_forms():
    now = utcnow()
    assert errorlog.parse_since("2h", now) == now - timedelta(hours=2)
    assert errorlog.parse_since("1w", now) == now - timedelta(weeks=1)
    assert errorlog.parse_since("2026-11-27T10:00:00+03:00").hour == 7
