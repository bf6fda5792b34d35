"""``eddymail template``: list, show, edit in $EDITOR, switch off and on, reset, preview.

What matters is what gets sent, so edits are checked through
``notifications.template_source`` (the text sending uses), not only through the commands'
own output.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

from eddymail.db.connection import close_database, open_database
from eddymail.services.outgoing import notifications
from eddymail.templates import TEMPLATE_NAMES, default_source, render, sample_context, spec
from tests.mailfactory import make_mail


def sent_text(database_path: Path, name: str, language: str = "en") -> str | None:
    """What sending would use for ``name`` now (None: switched off)."""
    open_database(f"sqlite:///{database_path}")
    try:
        return notifications.template_source(name, language)
    finally:
        close_database()


@pytest.fixture
def editor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point $EDITOR at a script; ``editor(old, new)`` replaces text, ``editor(text=...)`` sets it.

    click.edit runs ``$EDITOR FILE`` through the shell, like a person's editor.
    """
    script = tmp_path / "fake_editor.py"
    script.write_text(
        "import pathlib, sys\n"
        "path = pathlib.Path(sys.argv[-1])\n"
        "spec = pathlib.Path(sys.argv[1]).read_text(encoding='utf-8').split('\\0')\n"
        "if spec[0] == 'replace':\n"
        "    text = path.read_text(encoding='utf-8')\n"
        "    assert spec[1] in text, 'the editor was not given the current text'\n"
        "    path.write_text(text.replace(spec[1], spec[2]), encoding='utf-8')\n"
        "else:\n"
        "    path.write_text(spec[1], encoding='utf-8')\n",
        encoding="utf-8",
    )
    counter = iter(range(1000))

    def use(old: str | None = None, new: str | None = None, *, text: str | None = None) -> None:
        instructions = tmp_path / f"editor-{next(counter)}.txt"
        parts = ["replace", old, new] if text is None else ["write", text]
        instructions.write_text("\0".join(str(p) for p in parts), encoding="utf-8")
        command = [sys.executable, str(script), str(instructions)]
        monkeypatch.setenv("EDITOR", " ".join(shlex.quote(part) for part in command))
        monkeypatch.delenv("VISUAL", raising=False)

    return use


@pytest.fixture
def ticket(eddymail, tmp_path: Path) -> int:
    """A ticket in department Support, opened by ingesting a mail from Boris Ivanov."""
    eddymail("department", "add", "Support")
    mail = tmp_path / "first.eml"
    mail.write_bytes(make_mail("Printer is on fire", sender="Boris Ivanov <boris@example.org>"))
    result = eddymail.json("ingest", "--department", "Support", "--no-notify", str(mail))
    (message,) = result["messages"]
    return message["ticket_id"]


# --- list and show -------------------------------------------------------------------------


def test_list_shows_every_template_in_the_team_language(eddymail):
    items = eddymail.json("template", "list")["templates"]
    assert [item["name"] for item in items] == list(TEMPLATE_NAMES)
    assert {(item["language"], item["enabled"], item["customised"]) for item in items} == {
        ("en", True, False)
    }
    assert {item["name"] for item in items if not item["can_disable"]} == {"reply", "test_letter"}
    other = eddymail.json("template", "list", "--language", "ru")["templates"]
    assert {item["language"] for item in other} == {"ru"}

    table = eddymail("template", "list").stdout
    assert "ticket_created" in table
    assert spec("registration").description in table
    assert "on (always)" in table  # reply and test_letter cannot be switched off


def test_show_gives_the_current_text_and_the_variables(eddymail):
    shown = eddymail.json("template", "show", "registration")["template"]
    assert shown["source"] == default_source("registration", "en")
    assert shown["customised"] is False and shown["enabled"] is True
    assert [v["name"] for v in shown["variables"]] == list(spec("registration").variable_names)
    assert all(v["description"] for v in shown["variables"])

    test_letter = eddymail.json("template", "show", "test_letter")["template"]
    assert {v["name"] for v in test_letter["variables"] if v["required"]} == {"token"}

    page = eddymail("template", "show", "reply").stdout
    assert "{{ reply.body }}" in page  # both in the variable list and in the text
    assert "The agent's reply text" in page
    assert "Kind regards," in page


def test_an_unknown_template_names_the_real_ones(eddymail):
    result = eddymail("template", "show", "welcome", code=1)
    assert "There is no notification template called 'welcome'" in result.stderr
    assert "ticket_created" in result.stderr
    assert result.stdout == ""


def test_the_russian_language_setting_shows_russian_defaults(eddymail, database_path):
    eddymail("settings", "set", "language", "ru")
    items = eddymail.json("template", "list")["templates"]
    assert {item["language"] for item in items} == {"ru"}
    shown = eddymail.json("template", "show", "ticket_created")["template"]
    assert shown["source"] == default_source("ticket_created", "ru")
    assert "Здравствуйте" in eddymail("template", "show", "ticket_created").stdout
    preview = eddymail.json("template", "preview", "ticket_created")
    assert preview["subject"] == "[#1042] Обращение принято"
    # --language looks at the other one without changing the setting.
    english = eddymail.json("template", "show", "ticket_created", "--language", "en")
    assert english["template"]["source"] == default_source("ticket_created", "en")


# --- edit ----------------------------------------------------------------------------------


def test_editing_in_the_editor_changes_what_is_sent_and_previewed(
    eddymail, editor, database_path
):
    editor("We have received your request", "Thanks for writing to us")
    saved = eddymail.json("template", "edit", "ticket_created")
    assert saved["saved"] is True and saved["template"]["customised"] is True

    expected = default_source("ticket_created", "en").replace(
        "We have received your request", "Thanks for writing to us"
    )
    assert sent_text(database_path, "ticket_created") == expected
    assert "Thanks for writing to us" in eddymail("template", "preview", "ticket_created").stdout
    listed = {i["name"]: i for i in eddymail.json("template", "list")["templates"]}
    assert listed["ticket_created"]["customised"] is True
    assert listed["registration"]["customised"] is False
    # The other language is a separate text and stays as shipped.
    assert sent_text(database_path, "ticket_created", "ru") == default_source(
        "ticket_created", "ru"
    )


def test_editing_the_subject_line_changes_the_rendered_subject(eddymail, editor):
    editor("Request received", "We got your mail, {{ department.name }}")
    eddymail("template", "edit", "ticket_created")
    preview = eddymail.json("template", "preview", "ticket_created")
    assert preview["subject"] == "[#1042] We got your mail, Accounts"


@pytest.mark.parametrize(
    ("old", "new", "line", "complaint"),
    [
        # An unclosed tag on line 3 of the shipped text (the greeting).
        ("Hello,", "Hello {% if %},", 3, "line 3"),
        # A variable the template does not offer, on the "Department:" line (8).
        ("Department: {{ department.name }}", "Department: {{ department.phone }}", 8,
         "unknown variable 'department.phone'"),
    ],
    ids=["syntax-error", "unknown-variable"],
)
def test_a_broken_template_is_refused_with_its_line_and_nothing_saved(
    eddymail, editor, database_path, old, new, line, complaint
):
    editor(old, new)
    result = eddymail("template", "edit", "ticket_created", code=2)
    assert f"line {line}" in result.stderr
    assert complaint in result.stderr
    assert sent_text(database_path, "ticket_created") == default_source("ticket_created", "en")
    assert eddymail.json("template", "show", "ticket_created")["template"]["customised"] is False


def test_a_broken_file_is_refused_too(eddymail, tmp_path, database_path):
    broken = tmp_path / "broken.txt"
    broken.write_text("Subject: Hi {{ ticket.id }}\n\nDear {{ user.password }}\n")
    result = eddymail("template", "edit", "registration", "--file", str(broken), code=2)
    assert "line 3" in result.stderr and "unknown variable 'user'" in result.stderr
    assert sent_text(database_path, "registration") == default_source("registration", "en")


def test_an_unchanged_edit_saves_nothing(eddymail, monkeypatch, database_path):
    # `true` leaves the file as it was: the same as quitting the editor without saving.
    monkeypatch.setenv("EDITOR", "true")
    monkeypatch.delenv("VISUAL", raising=False)
    result = eddymail("template", "edit", "registration")
    assert "No changes; nothing saved." in result.stderr
    assert eddymail.json("template", "show", "registration")["template"]["updated_at"] is None
    assert sent_text(database_path, "registration") == default_source("registration", "en")


def test_an_empty_edit_aborts_without_saving(eddymail, editor, database_path):
    editor("We have received your request", "Thanks!")
    eddymail("template", "edit", "ticket_created")
    editor(text="\n\n")
    result = eddymail("template", "edit", "ticket_created", code=1)
    assert "empty; nothing saved" in result.stderr
    assert "template reset ticket_created" in result.stderr
    assert "Thanks!" in sent_text(database_path, "ticket_created")


def test_editing_from_a_file_or_stdin_for_scripts(eddymail, tmp_path, database_path):
    text = "Subject: Welcome to {{ helpdesk.name }}\n\nYour ticket is #{{ ticket.id }}.\n"
    path = tmp_path / "registration.txt"
    path.write_text(text, encoding="utf-8")
    saved = eddymail.json("template", "edit", "registration", "--file", str(path))
    assert saved["template"]["source"] == text
    assert sent_text(database_path, "registration") == text

    russian = "Subject: Добро пожаловать в {{ helpdesk.name }}\n\nНомер: {{ ticket.id }}.\n"
    eddymail("template", "edit", "registration", "--language", "ru", "--file", "-",
             input=russian)
    assert sent_text(database_path, "registration", "ru") == russian
    assert sent_text(database_path, "registration", "en") == text
    preview = eddymail.json("template", "preview", "registration", "--language", "ru")
    assert preview["body"] == "Номер: 1042.\n"


def test_saving_the_shipped_text_is_not_a_customisation(eddymail, tmp_path):
    path = tmp_path / "same.txt"
    path.write_text(default_source("ticket_created", "en"), encoding="utf-8")
    saved = eddymail.json("template", "edit", "ticket_created", "--file", str(path))
    assert saved["template"]["customised"] is False


def test_an_edit_does_not_overwrite_a_colleagues_save(eddymail, tmp_path, monkeypatch,
                                                      database_path):
    # While "our" editor is open, a colleague saves another text from a second process.
    colleague_text = tmp_path / "colleague.txt"
    colleague_text.write_text("Subject: Colleague {{ ticket.id }}\n\nTheir text.\n")
    script = tmp_path / "slow_editor.py"
    script.write_text(
        "import pathlib, subprocess, sys\n"
        f"subprocess.run([sys.executable, '-m', 'eddymail', 'template', 'edit', "
        f"'registration', '--file', {str(colleague_text)!r}], check=True)\n"
        "path = pathlib.Path(sys.argv[-1])\n"
        "path.write_text(path.read_text().replace('Hello', 'Hi'))\n"
    )
    monkeypatch.setenv("EDITOR", f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}")
    monkeypatch.delenv("VISUAL", raising=False)
    result = eddymail("template", "edit", "registration", code=1)
    assert "changed by someone else" in result.stderr
    assert sent_text(database_path, "registration") == colleague_text.read_text()


# --- enable, disable, reset ----------------------------------------------------------------


def test_disable_switches_a_notification_off_in_every_language(eddymail, database_path):
    result = eddymail("template", "disable", "registration")
    assert "switched off" in result.stdout
    assert sent_text(database_path, "registration", "en") is None
    assert sent_text(database_path, "registration", "ru") is None
    assert sent_text(database_path, "ticket_created") is not None  # only the one named
    listed = {i["name"]: i for i in eddymail.json("template", "list")["templates"]}
    assert listed["registration"]["enabled"] is False
    assert listed["ticket_created"]["enabled"] is True

    enabled = eddymail.json("template", "enable", "registration")["template"]
    assert enabled["enabled"] is True
    assert sent_text(database_path, "registration", "en") == default_source("registration", "en")
    assert sent_text(database_path, "registration", "ru") == default_source("registration", "ru")


def test_a_switched_off_template_keeps_its_edits(eddymail, tmp_path, database_path):
    eddymail("template", "disable", "ticket_created")
    text = "Subject: Got it [#{{ ticket.id }}]\n\nWe will answer soon.\n"
    path = tmp_path / "t.txt"
    path.write_text(text)
    saved = eddymail.json("template", "edit", "ticket_created", "--file", str(path))
    assert saved["template"]["enabled"] is False  # editing does not switch it back on
    assert sent_text(database_path, "ticket_created") is None
    preview = eddymail("template", "preview", "ticket_created")
    assert "switched off" in preview.stderr
    assert "We will answer soon." in preview.stdout
    eddymail("template", "enable", "ticket_created")
    assert sent_text(database_path, "ticket_created") == text


@pytest.mark.parametrize(
    ("name", "reason"),
    [("reply", "frame every staff reply"), ("test_letter", "channel test")],
)
def test_reply_and_test_letter_cannot_be_switched_off(eddymail, database_path, name, reason):
    result = eddymail("template", "disable", name, code=2)
    assert f"The {name} template cannot be switched off" in result.stderr
    assert reason in result.stderr
    assert sent_text(database_path, name) == default_source(name, "en")


def test_reset_restores_the_shipped_text(eddymail, editor, database_path):
    editor("We have received a message", "We got a message")
    eddymail("template", "edit", "registration")
    editor("Мы получили письмо", "Благодарим за письмо")
    eddymail("template", "edit", "registration", "--language", "ru")
    eddymail("template", "disable", "registration")

    reset = eddymail.json("template", "reset", "registration")["reset"]
    assert reset == {"name": "registration", "languages": ["en"], "restored": ["en"]}
    assert eddymail.json("template", "show", "registration")["template"]["source"] == (
        default_source("registration", "en")
    )
    # The switch is kept, and the other language keeps its edit.
    assert sent_text(database_path, "registration", "en") is None
    eddymail("template", "enable", "registration")
    assert sent_text(database_path, "registration", "en") == default_source("registration", "en")
    assert "Благодарим" in sent_text(database_path, "registration", "ru")

    result = eddymail("template", "reset", "registration", "--all-languages")
    assert "back to the shipped text (ru)" in result.stdout
    assert sent_text(database_path, "registration", "ru") == default_source("registration", "ru")
    again = eddymail("template", "reset", "registration")
    assert "nothing to reset" in again.stdout


def test_reset_refuses_both_language_options(eddymail):
    result = eddymail("template", "reset", "reply", "--language", "ru", "--all-languages",
                      code=2)
    assert "either --language or --all-languages" in result.stderr


# --- preview -------------------------------------------------------------------------------


def test_preview_with_sample_values(eddymail):
    preview = eddymail.json("template", "preview", "ticket_created")
    expected = render("ticket_created", default_source("ticket_created", "en"),
                      sample_context("ticket_created", "en"))
    assert (preview["subject"], preview["body"]) == (expected.subject, expected.body)
    assert preview["ticket_id"] is None

    page = eddymail("template", "preview", "ticket_created").stdout
    assert expected.subject in page
    assert "Department: Accounts" in page
    assert "{{" not in page  # rendered, not the source


def test_preview_uses_the_helpdesk_name_setting(eddymail):
    eddymail("settings", "set", "helpdesk-name", "Eddy Widgets")
    preview = eddymail.json("template", "preview", "registration")
    assert preview["subject"] == "[#1042] Your request to Eddy Widgets is registered"


def test_preview_with_a_ticket_uses_its_values(eddymail, ticket):
    preview = eddymail.json("template", "preview", "ticket_created", "--ticket", str(ticket))
    assert preview["ticket_id"] == ticket
    assert preview["subject"] == f"[#{ticket}] Request received"
    # Nothing the customer wrote: neither his name nor his subject (issue 11, class 4).
    assert "Boris" not in preview["body"] and "fire" not in preview["body"]
    assert "Department: Support" in preview["body"]
    # helpdesk.name falls back to the department's name (signed once), then follows the
    # setting.
    assert preview["body"].rstrip().endswith("Kind regards,\nSupport")
    eddymail("settings", "set", "helpdesk-name", "Eddy Widgets")
    registration = eddymail.json("template", "preview", "registration", "--ticket", str(ticket))
    assert f"Ticket number: {ticket}" in registration["body"]
    assert registration["subject"] == f"[#{ticket}] Your request to Eddy Widgets is registered"
    assert registration["body"].rstrip().endswith("Support\nEddy Widgets")


def test_preview_of_a_reply_shows_a_placeholder_and_the_agent(eddymail, ticket, tmp_path):
    config = tmp_path / "eddymail.toml"
    config.write_text('[agent]\nname = "Dana Agent"\n')
    result = eddymail("-c", str(config), "template", "preview", "reply", "--ticket", str(ticket))
    assert f"Re: [#{ticket}] Printer is on fire" in result.stdout
    assert "(your reply text)" in result.stdout
    assert "Dana Agent\nSupport" in result.stdout


def test_preview_of_the_test_letter_uses_the_departments_channel(eddymail, ticket):
    sample = eddymail.json("template", "preview", "test_letter", "--ticket", str(ticket))
    assert "Address: support@example.com" in sample["body"]  # no channel yet: sample values
    eddymail("channel", "add", "desk", "--department", "Support", "--email", "desk@example.org",
             "--protocol", "none", "--smtp-host", "smtp.example.org", "--password-stdin",
             input="secret\n")
    real = eddymail.json("template", "preview", "test_letter", "--ticket", str(ticket))
    assert real["subject"].startswith("Test letter for channel desk [")
    assert "Address: desk@example.org" in real["body"]
    assert "Department: Support" in real["body"]


def test_preview_of_a_missing_ticket_fails_clearly(eddymail):
    result = eddymail("template", "preview", "reply", "--ticket", "99", code=1)
    assert "No ticket #99" in result.stderr
    assert result.stdout == ""


def test_every_template_command_has_help_with_an_example(eddymail):
    for command in ("list", "show", "edit", "enable", "disable", "reset", "preview"):
        page = eddymail("template", command, "--help").stdout
        assert "Example" in page, command
