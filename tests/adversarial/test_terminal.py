"""Hostile text against the terminal: escape sequences, bidi, zero-width and rich markup.

A subject, a name, a body, a file name or a server answer may carry sequences that clear the
screen, move the cursor, set or report the window title, write the clipboard (OSC 52), make
fake hyperlinks (OSC 8), 8-bit C1 controls, bidi overrides, invisible characters and rich
markup. Every command that prints them must show them as visible literal text, change
nothing in the terminal, raise no markup error, and ``--json`` must escape them while
keeping the values exactly.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import unicodedata
import urllib.parse
from email import message_from_bytes
from email.header import decode_header, make_header
from email.policy import compat32

import pytest
from rich.console import Console

from eddymail.cli.output import Output
from eddymail.safetext import for_json, for_terminal
from tests.adversarial import hostile
from tests.adversarial.hostile import HOSTILE_TEXT, MARKUP
from tests.faults import cli_command, cli_environment

HOSTILE_NAME = "Eve \x1b]0;pwned\x07 [bold]Boss[/bold] \x9b2J \u202eevil\u202c \u200bx"
# No "/" in it: a slash is a path separator, and everything before it is cut off.
HOSTILE_FILE = "\x1b]0;pwned\x07[bold]inv[bold] \x1b[2J\u202egpj.exe\u200b"
# What a hostile subject must look like on screen: each control spelled out.
SHOWN_TITLE_SET = "\\x1b]0;pwned\\x07"


def unsafe_characters(text: str) -> list[str]:
    """Characters a terminal would obey or hide: controls (but newline), format characters
    (bidi, zero-width), surrogates, line and paragraph separators."""
    return sorted({
        char for char in text
        if char != "\n" and unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp")
    })


def assert_inert(text: str) -> None:
    """Nothing in ``text`` can drive a terminal; the hostile sequences are visible text."""
    assert unsafe_characters(text) == []
    assert "\\x1b" in text


def hostile_message() -> bytes:
    """One message carrying the attacks in its subject, names, body and attachment name."""
    filename = urllib.parse.quote(HOSTILE_FILE, safe="")
    return hostile.mixed(
        hostile.text_part(f"{HOSTILE_TEXT}\nSecond line {MARKUP}\n"),
        hostile.attachment_part(f"attachment; filename*=utf-8''{filename}", b"data"),
        subject=hostile.encoded_word(HOSTILE_TEXT),
        sender=f"{hostile.encoded_word(HOSTILE_NAME)} <eve@evil.example>",
        headers=[("Cc", f"{hostile.encoded_word(HOSTILE_NAME)} <mallory@evil.example>")],
    )


@pytest.fixture
def hostile_ticket(eddymail, support, tmp_path, monkeypatch):
    """A ticket made from ``hostile_message``; the path of the message file."""
    # Wide enough that no cell is cut: the assertions look for whole sequences.
    monkeypatch.setenv("COLUMNS", "3000")
    raw = hostile_message()
    assert hostile.ingest(eddymail, tmp_path, raw)[0]["status"] == "new_ticket"
    path = tmp_path / "hostile.eml"
    path.write_bytes(raw)
    return path


def test_the_parser_keeps_the_sequences_for_display_to_escape(hostile_ticket, eddymail):
    # Removing controls at parse time would show "]0;pwned" as if it were harmless text.
    ticket = eddymail.json("ticket", "show", "1")["ticket"]
    assert ticket["subject"] == HOSTILE_TEXT
    message = ticket["messages"][0]
    assert message["body_text"].startswith(HOSTILE_TEXT)
    assert message["from"] == {"address": "eve@evil.example", "name": HOSTILE_NAME}


COMMANDS = {
    "ticket_list": ("ticket", "list"),
    "ticket_show": ("ticket", "show", "1"),
    "ticket_show_full": ("ticket", "show", "1", "--full"),
    "user_list": ("user", "list"),
    "user_show": ("user", "show", "eve@evil.example"),
}


@pytest.mark.parametrize("command", COMMANDS)
def test_commands_show_hostile_text_as_visible_literal_text(command, hostile_ticket, eddymail):
    result = eddymail(*COMMANDS[command])
    output = result.stdout + result.stderr
    assert_inert(output)
    assert SHOWN_TITLE_SET in output
    # rich markup is printed, not interpreted (and "[/]" raised no MarkupError).
    assert "[bold]" in output


def test_mail_inspect_shows_hostile_text_as_visible_literal_text(hostile_ticket, eddymail):
    output = eddymail("mail", "inspect", str(hostile_ticket)).stdout
    assert_inert(output)
    for shown in (SHOWN_TITLE_SET, "\\x9b2J", "\\u202egpj.exe", "a\\u200bb\\ufeffc", MARKUP,
                  "\\x1b]52;c;ZWNobyBwd25lZA==\\x07", "\\x1b]8;;https://evil.example/\\x1b\\"):
        assert shown in output


def test_ticket_show_spells_out_every_sequence(hostile_ticket, eddymail):
    output = eddymail("ticket", "show", "1").stdout
    for shown in ("\\x1b[2J", "\\x1b[H", "\\x1b[5A", SHOWN_TITLE_SET, "\\x1b[21t",
                  "\\x1b]52;c;", "\\x1b]8;;https://evil.example/", "\\x9b2J",
                  "\\u202egpj.exe\\u202c", "\\u2066iso\\u2069", "a\\u200bb\\ufeffc", MARKUP,
                  "[bold]Boss[/bold]"):
        assert shown in output
    # The real address comes first: the display name is whatever the sender wrote.
    assert "eve@evil.example (Eve " in output


def test_attachment_names_show_where_controls_were_and_markup_literally(hostile_ticket,
                                                                        eddymail):
    # The stored name is also the name a file gets when saved, so it holds no control or
    # bidi character at all; each became a visible "_" rather than vanishing, which would
    # have left "]0;pwned" looking like harmless text.
    expected = "_]0;pwned_[bold]inv[bold] _[2J_gpj.exe"
    (item,) = eddymail.json("ticket", "attachments", "1")["attachments"]
    assert item["filename"] == expected
    for args in (("ticket", "attachments", "1"), ("ticket", "show", "1"),
                 ("mail", "inspect", str(hostile_ticket))):
        output = eddymail(*args).stdout
        assert expected in output and unsafe_characters(output) == []


def test_mail_list_shows_a_quarantined_hostile_message_safely(eddymail, support, tmp_path):
    bomb = hostile.nesting_bomb(50).replace(b"Subject: Hostile",
                                            b"Subject: " + HOSTILE_TEXT.encode())
    assert hostile.ingest(eddymail, tmp_path, bomb)[0]["status"] == "quarantined"
    output = eddymail("mail", "list").stdout
    assert unsafe_characters(output) == [] and "quarantined" in output
    document = eddymail("mail", "list", "--json").stdout
    assert unsafe_characters(document.replace("\n", "")) == []


JSON_COMMANDS = {
    "ticket_list": (("ticket", "list"), lambda doc: doc["tickets"][0]["subject"]),
    "ticket_show": (("ticket", "show", "1"), lambda doc: doc["ticket"]["subject"]),
    "ticket_show_body": (("ticket", "show", "1"),
                         lambda doc: doc["ticket"]["messages"][0]["body_text"].split("\n")[0]),
    "ticket_show_name": (("ticket", "show", "1"),
                         lambda doc: doc["ticket"]["messages"][0]["from"]["name"]),
    "user_list": (("user", "list"),
                  lambda doc: next(u["name"] for u in doc["users"]
                                   if u["email"] == "eve@evil.example")),
    "mail_inspect": (("mail", "inspect", "{path}"), lambda doc: doc["subject"]),
}
EXPECTED = {"ticket_show_name": HOSTILE_NAME, "user_list": HOSTILE_NAME}


@pytest.mark.parametrize("command", JSON_COMMANDS)
def test_json_escapes_hostile_text_and_keeps_the_values(command, hostile_ticket, eddymail):
    args, pick = JSON_COMMANDS[command]
    args = tuple(arg.format(path=hostile_ticket) for arg in args)
    document = eddymail(*args, "--json").stdout
    # json.dumps already escapes C0 controls; C1, bidi and zero-width ones too must be.
    assert unsafe_characters(document) == []
    assert pick(json.loads(document)) == EXPECTED.get(command, HOSTILE_TEXT)


@pytest.fixture
def sending_channel(eddymail, smtp_server):
    """A Support department whose outgoing-only channel sends through ``smtp_server``."""
    smtp_server.add_user("help", "secret")
    eddymail("department", "add", "Support")
    eddymail("channel", "add", "support", "--department", "Support", "--email",
             "help@example.test", "--protocol", "none", "--login", "help",
             "--smtp-host", smtp_server.host, "--smtp-port", str(smtp_server.port),
             "--smtp-security", "starttls", "--ca-file", str(smtp_server.ca_file),
             "--password-stdin", input="secret\n")
    return smtp_server


def test_log_shows_a_hostile_server_answer_literally(eddymail, sending_channel, tmp_path,
                                                     monkeypatch):
    smtp_server = sending_channel
    monkeypatch.setenv("COLUMNS", "3000")
    hostile.ingest(eddymail, tmp_path, hostile.raw_mail(subject="Plain"))
    answer = "554 5.7.1 \x1b]0;pwned\x07 [bold]no[/bold] [/] \x1b[2J rejected"
    smtp_server.queue_data_response(answer)
    reply = eddymail("ticket", "reply", "1", "-m", "Hello")
    assert_inert(reply.stdout + reply.stderr)
    for args in (("log",), ("outbox", "list")):
        result = eddymail(*args)
        assert_inert(result.stdout + result.stderr)
        assert SHOWN_TITLE_SET in result.stdout and "[bold]no[/bold] [/]" in result.stdout
    document = eddymail("log", "--json").stdout
    assert unsafe_characters(document) == []
    assert "\x1b]0;pwned\x07 [bold]no[/bold]" in json.loads(document)["entries"][0]["answer"]


def test_a_reply_to_a_hostile_subject_injects_no_header(eddymail, sending_channel, tmp_path):
    smtp_server = sending_channel
    subject = "Help\x1b]0;pwned\x07\r\nBcc: victim@evil.example\r\n\r\nInjected body"
    name = "Eve\r\nBcc: victim2@evil.example"
    raw = hostile.raw_mail(subject=hostile.encoded_word(subject),
                           sender=f"{hostile.encoded_word(name)} <eve@evil.example>")
    hostile.ingest(eddymail, tmp_path, raw)
    eddymail("ticket", "reply", "1", "-m", "We are on it.")
    (mail,) = smtp_server.wait_for(1)
    assert mail.rcpt_tos == ["eve@evil.example"]
    header_block = mail.data.split(b"\r\n\r\n", 1)[0]
    assert b"\x1b" not in header_block and b"\x07" not in header_block
    sent = message_from_bytes(mail.data, policy=compat32)
    assert sent.get_all("Bcc") is None
    # The would-be header and body are words of the one-line subject, nothing more.
    subject = str(make_header(decode_header(sent["Subject"])))
    assert "Bcc: victim@evil.example Injected body" in subject
    assert "\n" not in subject and "\r" not in subject
    body = sent.get_payload(decode=True).decode("utf-8", "replace")
    assert "Injected body" not in body and "We are on it." in body
    assert "victim" not in ",".join(mail.rcpt_tos)


def test_log_lines_on_stderr_spell_out_a_hostile_server_answer(eddymail, sending_channel,
                                                               tmp_path):
    sending_channel.queue_data_response("250 2.0.0 \x1b]0;pwned\x07 queued as [bold]x[/]")
    hostile.ingest(eddymail, tmp_path, hostile.raw_mail(subject="Plain"))
    result = eddymail("-v", "ticket", "reply", "1", "-m", "Hello")
    assert "sent outbox" in result.stderr and "\\x1b]0;pwned\\x07" in result.stderr
    assert unsafe_characters(result.stdout + result.stderr) == []


def test_a_traceback_under_verbose_spells_out_hostile_text(eddymail, support, monkeypatch):
    from eddymail.services.tickets import users

    def broken(**_options):
        raise RuntimeError(f"bug while reading {HOSTILE_NAME}")

    monkeypatch.setattr(users, "list_users", broken)
    result = eddymail("-v", "user", "list", code=1)
    assert "Traceback" in result.stderr and "Unexpected RuntimeError" in result.stderr
    assert unsafe_characters(result.stdout + result.stderr) == []


ERRORS = {
    # A name from the command line echoed in an error message.
    "unknown_department": (("ticket", "move", "1", "{hostile}"), 1),
    "missing_message_file": (("mail", "inspect", "/nonexistent/{hostile}.eml"), None),
    "not_a_folder": (("ticket", "attachment", "save", "1", "--to", "/nonexistent/{hostile}"),
                     None),
    "unknown_user": (("user", "show", "{hostile}@evil.example"), None),
    "bad_channel_name": (("channel", "add", "{hostile}", "--department", "Support",
                          "--email", "a@example.test", "--protocol", "none"), None),
    "undecodable_file_name": (("mail", "inspect", "/nonexistent/\udcff\udcfe.eml"), None),
}


@pytest.mark.parametrize("case", ERRORS)
def test_error_messages_show_hostile_names_literally(case, hostile_ticket, eddymail):
    args, code = ERRORS[case]
    hostile_arg = "\x1b]0;pwned\x07[bold]x[/bold][/]\u202e\x9b2J"
    result = eddymail(*(arg.format(hostile=hostile_arg) for arg in args), code=code)
    assert result.exit_code != 0
    output = result.stdout + result.stderr
    assert "Unexpected" not in output  # a clean message, not a crash of the error path
    assert unsafe_characters(output) == []
    if case != "undecodable_file_name":
        assert SHOWN_TITLE_SET in output or "\\x1b]0;pwned\\x07" in output
    else:
        assert "\\udcff\\udcfe" in output


@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
def test_an_undecodable_file_name_is_escaped_not_written_as_raw_bytes(locale, eddymail,
                                                                      support, tmp_path):
    # A file name is bytes; Python carries undecodable ones as lone surrogates, and writing
    # those back with surrogateescape put the raw byte 0x9b (an 8-bit CSI) on the terminal.
    path = os.fsencode(tmp_path) + b"/\x9b2J\xff.eml"
    with open(path, "wb") as handle:
        handle.write(hostile.raw_mail())
    argv = [os.fsencode(arg) for arg in cli_command("ingest", "--department", "Support")]
    completed = subprocess.run([*argv, path], env=cli_environment({"LC_ALL": locale}),
                               capture_output=True, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    assert b"\x9b" not in completed.stdout and b"\xff" not in completed.stdout
    assert b"\\udc9b2J\\udcff.eml: new ticket #1" in completed.stdout


CLICK_ERRORS = {
    "attach_file_that_does_not_exist": ("ticket", "reply", "1", "-m", "x", "--attach",
                                        "/nonexistent/{hostile}"),
    "status_that_does_not_exist": ("ticket", "list", "--status", "{hostile}"),
    "command_that_does_not_exist": ("ticket", "{hostile}"),
}
HOSTILE_ARGUMENT = "\x1b]0;pwned\x07[bold]x[/bold]\u202e"


@pytest.mark.parametrize("case", CLICK_ERRORS)
def test_usage_errors_from_click_show_hostile_arguments_literally(case, hostile_ticket,
                                                                  eddymail):
    args = (arg.format(hostile=HOSTILE_ARGUMENT) for arg in CLICK_ERRORS[case])
    result = eddymail(*args, code=2)
    assert unsafe_characters(result.stdout + result.stderr) == []


def test_a_reply_file_that_cannot_be_read_is_named_literally(hostile_ticket, eddymail):
    result = eddymail("ticket", "reply", "1", "-F", f"/nonexistent/{HOSTILE_ARGUMENT}", code=2)
    assert "Cannot read" in result.stderr
    assert unsafe_characters(result.stdout + result.stderr) == []


def test_progress_labels_are_not_rich_markup():
    # Labels (channel names, descriptions) went through rich's markup parser: "[/]" raised
    # MarkupError and "[link=...]" made a real hyperlink.
    stream = io.StringIO()
    output = Output()
    output._stderr = Console(file=stream, force_terminal=True, width=200, markup=False)
    with output.progress("[/] Fetching") as update:
        update("[link=https://evil.example]support[/link] \x1b]0;pwned\x07", 1, 2)
    shown = stream.getvalue()
    assert "[link=https://evil.example]support[/link]" in shown
    assert "\x1b]8;" not in shown and "\x1b]0;pwned" not in shown
    assert "\\x1b]0;pwned\\x07" in shown


def test_every_invisible_character_is_escaped_for_the_terminal_and_json():
    invisible = [
        chr(code) for code in range(0x110000)
        if unicodedata.category(chr(code)) in ("Cc", "Cf", "Cs", "Zl", "Zp")
        and chr(code) not in "\t\n"
    ]
    shown = for_terminal("".join(invisible))
    assert unsafe_characters(shown) == [] and shown.isascii()
    one_line = for_terminal("a\tb\nc", multiline=False)
    assert one_line == "a\\x09b\\x0ac"
    document = json.dumps({"value": "".join(invisible)}, ensure_ascii=False)
    escaped = for_json(document)
    assert escaped.isascii()
    # (Two lone surrogates side by side read back as one pair: JSON cannot tell them
    # apart, so they are compared one at a time.)
    surrogates = [char for char in invisible if unicodedata.category(char) == "Cs"]
    others = "".join(char for char in invisible if char not in surrogates)
    assert json.loads(for_json(json.dumps(others, ensure_ascii=False))) == others
    for char in surrogates[::97]:
        assert json.loads(for_json(json.dumps(char, ensure_ascii=False))) == char


def test_ordinary_text_is_left_alone():
    text = "Ünïcödé Привет 日本語 emoji 👍❤️ tab\tnew\nline \\x1b literal"
    assert for_terminal(text) == text
    assert for_json(json.dumps(text, ensure_ascii=False)) == json.dumps(text, ensure_ascii=False)
