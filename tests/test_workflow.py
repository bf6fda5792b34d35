"""Staff workflow against the real Dovecot and SMTP servers: replies, moves, the outbox."""

from __future__ import annotations

import email
import json
import os
import sqlite3
import stat
from email.policy import default as default_policy
from pathlib import Path

import pytest

from tests.mailfactory import make_mail


@pytest.fixture
def helpdesk(eddymail, dovecot, smtp_server, mail_user):
    """Support (IMAP + SMTP on the test user's mailbox) and Accounting (its own mailbox)."""
    billing_user = dovecot.create_user()
    for user in (mail_user, billing_user):
        smtp_server.add_user(user.login, user.password)
    eddymail("department", "add", "Support")
    eddymail("department", "add", "Accounting")

    def add(name, department, user):
        eddymail(
            "channel", "add", name, "--department", department, "--email", user.address,
            "--login", user.login, "--protocol", "imap", "--host", dovecot.host,
            "--port", str(dovecot.imaps_port), "--security", "ssl",
            "--ca-file", str(dovecot.pki.ca_file), "--smtp-host", smtp_server.host,
            "--smtp-port", str(smtp_server.port), "--smtp-security", "starttls",
            "--password-stdin", input=user.password + "\n",
        )

    add("support", "Support", mail_user)
    add("billing", "Accounting", billing_user)
    eddymail("fetch", "--no-notify")  # first connection of both mailboxes
    return billing_user


def received_letters(smtp_server, count):
    return [email.message_from_bytes(mail.data, policy=default_policy)
            for mail in smtp_server.wait_for(count)]


def test_round_trip_customer_mail_reply_and_answer_in_one_ticket(
        eddymail, helpdesk, dovecot, mail_user, smtp_server):
    dovecot.deliver(mail_user, make_mail("Re: RE: Printer on fire",
                                         message_id="<first@customer.example>"))
    eddymail("fetch", "--no-notify")
    result = eddymail.json("ticket", "reply", "1", "-m", "Please unplug it.")
    assert result["sent"] is True and result["reply"]["from_address"] == mail_user.address
    (letter,) = received_letters(smtp_server, 1)
    assert letter["Subject"] == "Re: [#1] Printer on fire"
    assert letter["In-Reply-To"] == "<first@customer.example>"
    assert "<first@customer.example>" in letter["References"]
    assert letter["From"].addresses[0].addr_spec == mail_user.address
    assert letter["To"] == "anna@customer.example"
    assert "Auto-Submitted" not in letter  # a person wrote it
    body = letter.get_content()
    assert "Please unplug it." in body and "Hello Anna Customer" in body
    assert letter["Message-ID"].endswith(f"@{mail_user.address.split('@')[1]}>")
    # The customer answers from her mail client: threading headers point at our reply.
    our_id = letter["Message-ID"]
    dovecot.deliver(mail_user, make_mail("Re: [#1] Printer on fire", body="Done, thanks!\n\n"
                                         "On Mon, Support wrote:\n> Please unplug it.\n",
                                         in_reply_to=our_id, references=our_id))
    report = eddymail.json("fetch", "--no-notify")["channels"]
    assert sum(r["followups"] for r in report) == 1
    ticket = eddymail.json("ticket", "show", "1")["ticket"]
    assert [m["direction"] for m in ticket["messages"]] == ["in", "out", "in"]
    assert ticket["status"] == "open"
    assert ticket["messages"][2]["new_text"] == "Done, thanks!"
    shown = eddymail("ticket", "show", "1").stdout
    assert "1 quoted line" not in shown and "quoted line(s) folded" in shown
    assert "> Please unplug it." in eddymail("ticket", "show", "1", "--full").stdout


def test_move_changes_the_sender_of_the_next_reply(eddymail, helpdesk, dovecot, mail_user,
                                                   smtp_server):
    billing_user = helpdesk
    dovecot.deliver(mail_user, make_mail("Invoice question"))
    eddymail("fetch", "--no-notify")
    eddymail("ticket", "reply", "1", "-m", "Forwarding to accounting.")
    moved = eddymail.json("ticket", "move", "1", "accounting")["ticket"]
    assert moved["department"] == "Accounting"
    eddymail("ticket", "reply", "1", "-m", "Your invoice is attached.")
    first, second = smtp_server.wait_for(2)
    assert first.mail_from == mail_user.address
    assert second.mail_from == billing_user.address
    system = [m for m in eddymail.json("ticket", "show", "1")["ticket"]["messages"]
              if m["direction"] == "system"]
    assert "moved the ticket from Support to Accounting" in system[0]["body_text"]


def test_smtp_down_reply_stays_queued_then_is_sent_exactly_once(
        eddymail, helpdesk, dovecot, mail_user, smtp_server):
    dovecot.deliver(mail_user, make_mail("Help"))
    eddymail("fetch", "--no-notify")
    smtp_server.stop()
    result = eddymail("ticket", "reply", "1", "-m", "We are on it.", "--json")
    document = json.loads(result.stdout)
    assert document["sent"] is False and "refused" in document["error"].lower()
    assert "queued but not sent" in result.stderr
    (waiting,) = eddymail.json("outbox", "list")["outbox"]
    assert waiting["status"] == "queued" and waiting["attempts"] == 1
    assert waiting["last_error"]
    assert any(e["operation"] == "send reply" for e in eddymail.json("log")["entries"])
    # Still down: fetch fails the send (exit 3), but the back-off means it is not retried yet.
    eddymail("fetch", "--no-notify")
    smtp_server.start()
    retried = eddymail.json("outbox", "retry")["results"]
    assert [r["sent"] for r in retried] == [True]
    eddymail("fetch", "--no-notify")
    eddymail("outbox", "retry")
    assert len(smtp_server.wait_for(1)) == 1
    import time

    time.sleep(0.3)
    assert len(smtp_server.received) == 1
    assert eddymail.json("outbox", "list")["outbox"] == []


def test_fetch_sends_a_due_reply(eddymail, helpdesk, dovecot, mail_user, smtp_server,
                                 database_path):
    dovecot.deliver(mail_user, make_mail("Help"))
    eddymail("fetch", "--no-notify")
    smtp_server.stop()
    eddymail("ticket", "reply", "1", "-m", "Queued reply.")
    smtp_server.start()
    connection = sqlite3.connect(database_path)
    connection.execute("UPDATE outbox_item SET next_attempt_at = '2000-01-01 00:00:00'")
    connection.commit()
    report = eddymail.json("fetch")
    assert [r["sent"] for r in report["outbox"]] == [True]
    assert len(smtp_server.wait_for(1)) == 1


def test_reply_through_the_editor_and_empty_draft_aborts(eddymail, helpdesk, dovecot, mail_user,
                                                         smtp_server, tmp_path, monkeypatch):
    dovecot.deliver(mail_user, make_mail("Editor"))
    eddymail("fetch", "--no-notify")
    script = tmp_path / "editor.py"
    script.write_text(
        "import sys\n"
        "path = sys.argv[1]\n"
        "draft = open(path, encoding='utf-8').read()\n"
        "assert '# ---- Write your reply above this line' in draft\n"
        "assert 'Hello, the printer is on fire.' in draft\n"
        "open(path, 'w', encoding='utf-8').write('Typed in the editor.\\n' + draft)\n"
    )
    import sys

    monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")
    import click.testing

    from eddymail.cli import cli

    runner = click.testing.CliRunner()
    # The editor only opens for a person at a terminal; pretend the test's stdin is one.
    monkeypatch.setattr(click.testing._NamedTextIOWrapper, "isatty", lambda self: True)
    result = runner.invoke(cli, ["ticket", "reply", "1"])
    assert result.exit_code == 0, result.stderr
    (letter,) = received_letters(smtp_server, 1)
    body = letter.get_content()
    assert "Typed in the editor." in body and "Write your reply above" not in body
    empty = tmp_path / "empty.py"
    empty.write_text("pass\n")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {empty}")
    aborted = runner.invoke(cli, ["ticket", "reply", "1"])
    assert aborted.exit_code == 2 and "empty" in aborted.stderr


def test_reply_with_attachment_cc_and_close(eddymail, helpdesk, dovecot, mail_user, smtp_server,
                                            tmp_path):
    dovecot.deliver(mail_user, make_mail("Need the form"))
    eddymail("fetch", "--no-notify")
    form = tmp_path / "форма.pdf"
    form.write_bytes(b"%PDF-1.4 \x00\xff binary")
    result = eddymail.json("ticket", "reply", "1", "-m", "Here it is.", "--attach", str(form),
                           "--cc", "boss@customer.example", "--close")
    assert result["reply"]["status"] == "closed"
    (received,) = smtp_server.wait_for(1)
    assert received.rcpt_tos == ["anna@customer.example", "boss@customer.example"]
    letter = email.message_from_bytes(received.data, policy=default_policy)
    (part,) = list(letter.iter_attachments())
    assert part.get_filename() == "форма.pdf" and part.get_content() == form.read_bytes()
    assert eddymail.json("ticket", "list")["tickets"] == []  # closed: not active


def test_reply_to_differing_from_from_goes_to_the_requester(eddymail, helpdesk, dovecot,
                                                             mail_user, smtp_server):
    dovecot.deliver(mail_user, make_mail("Redirect me",
                                         headers={"Reply-To": "thief@evil.example"}))
    eddymail("fetch", "--no-notify")
    shown = eddymail("ticket", "show", "1").stdout
    assert "Reply-To differs from From: thief@evil.example" in shown
    eddymail("ticket", "reply", "1", "-m", "Answer.")
    assert smtp_server.wait_for(1)[0].rcpt_tos == ["anna@customer.example"]


def test_notes_status_assign(eddymail, helpdesk, dovecot, mail_user, smtp_server):
    eddymail("agent", "add", "anna", "--name", "Anna Petrova", "--department", "Support")
    eddymail("agent", "add", "bob", "--department", "Support")
    dovecot.deliver(mail_user, make_mail("Internal"))
    eddymail("fetch", "--no-notify")
    eddymail("--as", "bob", "ticket", "note", "1", "-m", "Called the customer.")
    assert eddymail.json("ticket", "assign", "1", "Anna Petrova", "--as", "bob")["ticket"][
        "assignee"] == "anna"
    assert eddymail.json("ticket", "list", "--assignee", "Anna Petrova")["tickets"][0]["id"] == 1
    assert eddymail.json("ticket", "close", "1", "--as", "anna")["ticket"]["status"] == "closed"
    assert eddymail.json("ticket", "reopen", "1", "--as", "anna")["ticket"]["status"] == "open"
    assert eddymail.json("ticket", "assign", "1", "--unassign", "--as", "anna")["ticket"][
        "assignee"] is None
    ticket = eddymail.json("ticket", "show", "1")["ticket"]
    assert [m["direction"] for m in ticket["messages"]] == ["in", "note", "system", "system",
                                                            "system", "system"]
    assert [(h["agent"], h["action"]) for h in ticket["history"]] == [
        ("bob", "note"), ("bob", "assign"), ("anna", "close"), ("anna", "reopen"),
        ("anna", "unassign")]
    assert smtp_server.received == []  # a note is never mailed, nobody has an address


def test_attachments_are_saved_safely(eddymail, support, tmp_path):
    raw = (
        b"From: a@customer.example\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee files\r\n"
        b'--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; '
        b'filename="../../evil.sh"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        b"IyEvYmluL3NoCmVjaG8gcHduZWQK\r\n--b--\r\n"
    )
    source = tmp_path / "files.eml"
    source.write_bytes(raw)
    eddymail("ingest", "--department", "Support", str(source))
    (attachment,) = eddymail.json("ticket", "attachments", "1")["attachments"]
    target = tmp_path / "downloads"
    target.mkdir()
    first = eddymail.json("ticket", "attachment", "save", str(attachment["id"]), "--to",
                          str(target))["saved"]
    second = eddymail.json("ticket", "attachment", "save", str(attachment["id"]), "--to",
                           str(target))["saved"]
    assert os.path.dirname(first["path"]) == str(target)
    assert first["path"] != second["path"]  # never overwritten
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [os.path.basename(first["path"]), os.path.basename(second["path"])])
    assert ".." not in first["path"]
    mode = os.stat(first["path"]).st_mode
    assert not mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    assert Path(first["path"]).read_bytes() == b"#!/bin/sh\necho pwned\n"
    assert not (tmp_path / "evil.sh").exists()


def test_reply_needs_an_outgoing_channel(eddymail, support, tmp_path):
    source = tmp_path / "m.eml"
    source.write_bytes(make_mail("No mailbox"))
    eddymail("ingest", "--department", "Support", str(source))
    result = eddymail("ticket", "reply", "1", "-m", "hello", code=2)
    assert "has no outgoing channel" in result.stderr


def test_terminal_escapes_and_markup_in_subjects_are_shown_literally(eddymail, support,
                                                                     tmp_path):
    hostile = "\x1b]0;pwned\x07\x1b[2J[bold]Hi[/] [link=https://evil.example]x[/link]\u202e"
    source = tmp_path / "hostile.eml"
    source.write_bytes(make_mail(hostile, body=f"body {hostile}\n",
                                 sender=f'"{hostile}" <anna@customer.example>'))
    eddymail("ingest", "--department", "Support", str(source))
    for args in (("ticket", "list"), ("ticket", "show", "1")):
        output = eddymail(*args).stdout
        assert "\x1b" not in output and "\x07" not in output and "\u202e" not in output
        assert "]0;pwned" in output  # visible text, not a command to the terminal
        assert "[bold]Hi[/]" in output and "[link=https://evil.example]" in output
    document = eddymail("ticket", "show", "1", "--json").stdout
    assert "\x1b" not in document and "\u202e" not in document
    assert "]0;pwned" in json.loads(document)["ticket"]["subject"]


def test_two_channels_answering_each_other_do_not_loop(eddymail, helpdesk, dovecot, mail_user,
                                                       smtp_server, database_path):
    billing_user = helpdesk
    # Accounting's mailbox writes to Support's (say, a notification of another system).
    dovecot.deliver(mail_user, make_mail("Ping", sender=f"Billing <{billing_user.address}>"))
    dovecot.deliver(billing_user, make_mail("Pong", sender=f"Support <{mail_user.address}>"))
    reports = eddymail.json("fetch")["channels"]
    assert sum(r["recorded"] for r in reports) == 2
    assert sum(r["new_tickets"] for r in reports) == 0
    assert eddymail.json("outbox", "list", "--all")["outbox"] == []
    assert smtp_server.received == []


def test_per_recipient_daily_cap_of_automatic_mail(eddymail, helpdesk, dovecot, mail_user,
                                                   smtp_server):
    eddymail("settings", "set", "auto-mail-per-recipient", "2")
    for number in range(5):
        dovecot.deliver(mail_user, make_mail(f"Request {number}"))
    eddymail("fetch")
    assert eddymail.json("ticket", "list")["tickets"].__len__() == 5
    letters = smtp_server.wait_for(2)
    import time

    time.sleep(0.3)
    assert len(smtp_server.received) == len(letters) == 2
