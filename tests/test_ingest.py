"""`eddymail ingest` and `eddymail mail inspect`: files, stdin, mbox, Maildir."""

from __future__ import annotations

import json
import mailbox
from pathlib import Path

from tests.mailfactory import make_mail

SAMPLE = Path(__file__).resolve().parent.parent / "eddymail" / "samples" / "welcome.eml"


def test_the_bundled_sample_becomes_a_ticket(eddymail):
    eddymail("init")
    first = eddymail.json("ingest", str(SAMPLE))["messages"]
    assert first[0]["status"] == "new_ticket" and first[0]["ticket_id"] == 1
    again = eddymail.json("ingest", str(SAMPLE))["messages"]
    assert again[0]["status"] == "duplicate" and again[0]["ticket_id"] == 1
    (ticket,) = eddymail.json("ticket", "list")["tickets"]
    assert ticket["department"] == "Support" and ticket["subject"]


def test_stdin_like_a_mail_server_pipe(eddymail, support):
    raw = make_mail("Piped in").decode()
    result = eddymail.json("ingest", "--department", "Support", input=raw)
    assert result["messages"][0]["file"] == "<stdin>"
    assert eddymail.json("ticket", "list")["tickets"][0]["subject"] == "Piped in"


def test_mbox_and_maildir(eddymail, support, tmp_path):
    box = mailbox.mbox(str(tmp_path / "archive.mbox"))
    for number in range(3):
        box.add(make_mail(f"From the mbox {number}"))
    box.flush()
    folder = mailbox.Maildir(str(tmp_path / "Maildir"))
    folder.add(make_mail("From the maildir"))
    result = eddymail.json("ingest", "--department", "Support", str(tmp_path / "archive.mbox"),
                           str(tmp_path / "Maildir"))
    assert [m["status"] for m in result["messages"]] == ["new_ticket"] * 4
    subjects = sorted(t["subject"] for t in eddymail.json("ticket", "list")["tickets"])
    assert subjects == ["From the maildir", "From the mbox 0", "From the mbox 1",
                        "From the mbox 2"]


def test_a_plain_directory_is_refused(eddymail, support, tmp_path):
    result = eddymail("ingest", "--department", "Support", str(tmp_path), code=2)
    assert "not a Maildir" in result.stderr


def test_where_mail_goes_must_be_clear(eddymail, tmp_path):
    source = tmp_path / "m.eml"
    source.write_bytes(make_mail())
    assert "no department yet" in eddymail("ingest", str(source), code=1).stderr
    eddymail("department", "add", "A")
    eddymail("department", "add", "B")
    assert "--department" in eddymail("ingest", str(source), code=1).stderr
    assert eddymail.json("ingest", "--department", "b", str(source))["messages"][0][
        "status"] == "new_ticket"


def test_a_reply_file_threads_into_its_ticket(eddymail, support, tmp_path):
    first, second = tmp_path / "1.eml", tmp_path / "2.eml"
    first.write_bytes(make_mail("Question", message_id="<q@customer.example>"))
    second.write_bytes(make_mail("Re: Question", in_reply_to="<q@customer.example>"))
    statuses = [m["status"] for m in eddymail.json("ingest", "--department", "Support",
                                                     str(first), str(second))["messages"]]
    assert statuses == ["new_ticket", "followup"]


def test_environment_problems_are_temporary_failures_for_a_pipe(eddymail, tmp_path,
                                                                monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", f"sqlite:///{blocker}/db.sqlite")
    piped = eddymail("ingest", input=make_mail().decode(), code=75)
    assert "temporary failure" in piped.stderr
    source = tmp_path / "m.eml"
    source.write_bytes(make_mail())
    assert eddymail("ingest", str(source), code=4).exit_code == 4  # a person: the plain code


def test_bounce_of_our_mail_is_attached_to_its_ticket(eddymail, support, tmp_path,
                                                     database_path):
    import sqlite3

    source = tmp_path / "q.eml"
    source.write_bytes(make_mail("Order 66"))
    eddymail("ingest", "--department", "Support", str(source))
    connection = sqlite3.connect(database_path)
    connection.execute(
        "INSERT INTO outbox_item (kind, ticket_id, mail_from, recipients, recipient, raw, "
        "message_id, automatic, status, attempts, next_attempt_at, created_at) VALUES "
        "('reply', 1, 'help@example.test', '[]', 'anna@customer.example', x'00', "
        "'ours-1@example.test', 0, 'sent', 1, '2026-01-01', '2026-01-01')")
    connection.commit()
    bounce = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n"
        b"To: help@example.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
        b"--r\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        b"--r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
        b"Final-Recipient: rfc822; anna@customer.example\r\nAction: failed\r\n"
        b"Status: 5.1.1\r\n\r\n"
        b"--r\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"Message-ID: <ours-1@example.test>\r\nSubject: Re: [#1] Order 66\r\n\r\n--r--\r\n"
    )
    (tmp_path / "bounce.eml").write_bytes(bounce)
    result = eddymail.json("ingest", "--department", "Support", str(tmp_path / "bounce.eml"))
    assert result["messages"][0]["status"] == "recorded"
    assert result["messages"][0]["ticket_id"] == 1
    messages = eddymail.json("ticket", "show", "1")["ticket"]["messages"]
    assert [(m["direction"], m["automatic"]) for m in messages] == [("in", None),
                                                                     ("system", "bounce")]
    assert "delivery failure (bounce)" in eddymail("ticket", "show", "1").stdout
    assert len(eddymail.json("ticket", "list", "--status", "all")["tickets"]) == 1


def test_mail_inspect_json_has_every_documented_key(eddymail, tmp_path):
    source = tmp_path / "m.eml"
    source.write_bytes(make_mail("Inspect me", cc="Carl <carl@customer.example>",
                                 headers={"Reply-To": "other@customer.example"}))
    document = json.loads(eddymail("mail", "inspect", str(source), "--json").stdout)
    assert set(document) >= {"subject", "from", "to", "cc", "reply_to", "date", "message_id",
                             "in_reply_to", "references", "body_text", "has_html",
                             "attachments", "auto_reply", "bounce", "mailing_list"}
    assert document["from"] == {"address": "anna@customer.example", "name": "Anna Customer"}
    assert document["cc"] == [{"address": "carl@customer.example", "name": "Carl"}]
    assert document["reply_to"][0]["address"] == "other@customer.example"
    assert document["date"].endswith("Z")
    people = eddymail("mail", "inspect", str(source)).stdout
    assert "Inspect me" in people and "anna@customer.example" in people


def test_mail_inspect_of_a_missing_file(eddymail, tmp_path):
    result = eddymail("mail", "inspect", str(tmp_path / "nope.eml"), code=1)
    assert "No such file" in result.stderr
