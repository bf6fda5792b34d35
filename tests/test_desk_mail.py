"""The support desk against the real Dovecot and SMTP server: two agents working one
mailbox, staff notifications (at once, in a digest, switched off, failing), and replies to
several people."""

from __future__ import annotations

import email
import sqlite3
import time
from email.message import EmailMessage
from email.policy import default as default_policy

import pytest

from tests.mailfactory import make_mail

AUTHSERV = "mx.example.test"
ANNA = "anna@staff.example"
BOB = "bob@staff.example"


def verified(raw: bytes) -> bytes:
    """``raw`` as our provider's MX hands it over after a passing DMARC check."""
    return (f"Authentication-Results: {AUTHSERV}; dmarc=pass "
            "header.from=customer.example\r\n").encode() + raw


@pytest.fixture
def desk(eddymail, dovecot, smtp_server, mail_user):
    """Support with one mailbox (IMAP in, SMTP out) and two agents, Anna and Bob."""
    smtp_server.add_user(mail_user.login, mail_user.password)
    eddymail("department", "add", "Support")
    eddymail("channel", "add", "support", "--department", "Support", "--email",
             mail_user.address, "--login", mail_user.login, "--protocol", "imap",
             "--host", dovecot.host, "--port", str(dovecot.imaps_port), "--security", "ssl",
             "--ca-file", str(dovecot.pki.ca_file), "--smtp-host", smtp_server.host,
             "--smtp-port", str(smtp_server.port), "--smtp-security", "starttls",
             "--authserv-id", AUTHSERV, "--password-stdin", input=mail_user.password + "\n")
    eddymail("fetch")  # the first connection, on an empty mailbox
    eddymail("agent", "add", "anna", "--name", "Anna Petrova", "--email", ANNA,
             "--signature", "Anna Petrova\\nSupport engineer, Example Ltd")
    eddymail("agent", "add", "bob", "--name", "Bob Builder", "--email", BOB)
    return eddymail


def deliver(dovecot, mail_user, raw: bytes) -> None:
    dovecot.deliver(mail_user, raw)


def settle(smtp_server, expected: int) -> list[EmailMessage]:
    """What the SMTP server got, parsed, once ``expected`` arrived and a moment more passed
    (so mail that should not come has had its chance)."""
    smtp_server.wait_for(expected)
    time.sleep(0.3)
    assert len(smtp_server.received) == expected, [m.rcpt_tos for m in smtp_server.received]
    return [email.message_from_bytes(m.data, policy=default_policy)
            for m in smtp_server.received]


def to_address(letter: EmailMessage) -> str:
    return letter["To"].addresses[0].addr_spec


def text_of(letter: EmailMessage) -> str:
    return letter.get_body(("plain",)).get_content().replace("\r\n", "\n")


def test_two_agents_assign_notify_reply_with_cc_customer_answers(
        desk, dovecot, mail_user, smtp_server):
    # A customer writes, with a colleague in Cc; the provider verified her.
    deliver(dovecot, mail_user, verified(make_mail(
        "Printer on fire", cc="Carl Colleague <carl@customer.example>",
        body="Hello, the printer is on fire.\nPlease help!\n",
        message_id="<first@customer.example>")))
    desk("fetch")
    letters = settle(smtp_server, 3)  # the customer's registration, one per agent
    staff = {to_address(letter): letter for letter in letters
             if letter["X-Eddymail-Ticket"] and to_address(letter).endswith("staff.example")}
    assert set(staff) == {ANNA, BOB}
    new = staff[ANNA]
    assert new["Subject"] == "[#1] New ticket (Support): Printer on fire"
    assert new["Auto-Submitted"] == "auto-generated"
    assert new.get_content_type() == "text/plain"
    assert "Hello Anna Petrova," in text_of(new)
    assert "the printer is on fire.\nPlease help!" in text_of(new)
    assert "From: Anna Customer <anna@customer.example>" in text_of(new)
    ticket = desk.json("ticket", "show", "1")["ticket"]
    assert ticket["participants"] == ["carl@customer.example"]

    # Bob gives it to Anna; she is told at once.
    assert desk.json("--as", "bob", "ticket", "assign", "1", "anna")["ticket"]["assignee"] == (
        "anna")
    assigned = settle(smtp_server, 4)[-1]
    assert to_address(assigned) == ANNA
    assert assigned["Subject"] == "[#1] Assigned to you: Printer on fire"
    assert "Bob Builder (bob) has assigned this ticket to you" in text_of(assigned)

    # Anna answers the customer, her colleague, and the boss she adds.
    result = desk.json("--as", "anna", "ticket", "reply", "1", "-m", "Please unplug it.",
                       "--cc", "Boss@Customer.Example")
    assert result["sent"] is True
    assert result["reply"]["to"] == ["anna@customer.example"]
    assert result["reply"]["cc"] == ["carl@customer.example", "Boss@customer.example"]
    reply = settle(smtp_server, 5)[-1]
    received = smtp_server.received[-1]
    assert received.rcpt_tos == ["anna@customer.example", "carl@customer.example",
                                 "Boss@customer.example"]
    assert reply["From"].addresses[0].display_name == "Anna Petrova, Support"
    body = text_of(reply)
    assert "Hello Anna Customer," in body and "Please unplug it." in body
    assert "Kind regards,\nAnna Petrova\nSupport engineer, Example Ltd\n" in body
    assert "root" not in body.lower()
    assert "Auto-Submitted" not in reply  # a person wrote it

    # Carl answers everyone; Anna has the ticket, so only she hears of it.
    deliver(dovecot, mail_user, verified(make_mail(
        "Re: [#1] Printer on fire", sender="Carl Colleague <carl@customer.example>",
        body="Unplugged, thanks.\n\n> Please unplug it.\n", in_reply_to=reply["Message-ID"],
        references=reply["Message-ID"])))
    desk("fetch")
    answer = settle(smtp_server, 6)[-1]
    assert to_address(answer) == ANNA
    assert answer["Subject"] == "[#1] Customer replied: Printer on fire"
    assert "Unplugged, thanks." in text_of(answer)
    # Carl wrote it, under his own name: not the requester's name with his address.
    assert "From: Carl Colleague <carl@customer.example>" in text_of(answer)
    assert "Anna Customer" not in text_of(answer)
    assert "Please unplug it." not in text_of(answer)  # the quoted history is left out
    assert "Assigned to: Anna Petrova" in text_of(answer)

    ticket = desk.json("ticket", "show", "1")["ticket"]
    assert [m["direction"] for m in ticket["messages"]] == ["in", "system", "out", "in"]
    assert ticket["participants"] == ["carl@customer.example", "boss@customer.example"]
    assert [(h["agent"], h["action"]) for h in ticket["history"]] == [
        ("bob", "assign"), ("anna", "reply")]
    assert ticket["history"][1]["detail"]["cc"] == ["carl@customer.example",
                                                    "Boss@customer.example"]
    assert [t["id"] for t in desk.json("ticket", "list", "--mine", "--as", "anna")[
        "tickets"]] == [1]


def test_an_agent_answering_a_notification_by_mail_adds_a_note(
        desk, dovecot, mail_user, smtp_server):
    desk("template", "disable", "registration")
    deliver(dovecot, mail_user, verified(make_mail("Printer jammed", body="It jams.\n")))
    desk("fetch")
    told = {to_address(letter): letter for letter in settle(smtp_server, 2)}
    to_anna, to_bob = told[ANNA], told[BOB]
    assert "A reply to this mail becomes your internal\nnote on ticket #1" in text_of(to_anna)

    def answer(sender: str, notification, body: str) -> bytes:
        return (f"Authentication-Results: {AUTHSERV}; dmarc=pass header.from=staff.example"
                "\r\n").encode() + make_mail(
            f"Re: {notification['Subject']}", sender=sender, body=body,
            in_reply_to=notification["Message-ID"], references=notification["Message-ID"])

    # Anna answers from her phone: her words become her note on #1, and nobody is mailed.
    deliver(dovecot, mail_user, answer(f"Anna Petrova <{ANNA.upper()}>", to_anna,
                                       "Known issue, I will call them.\n\n> It jams.\n"))
    report = desk.json("fetch")["channels"][0]
    assert (report["new_tickets"], report["followups"]) == (0, 1)
    ticket = desk.json("ticket", "show", "1")["ticket"]
    note = ticket["messages"][-1]
    assert note["direction"] == "note" and "Known issue" in note["body_text"]
    assert ticket["history"][-1]["agent"] == "anna"
    assert ticket["history"][-1]["action"] == "note"
    assert ticket["status"] == "open" and ticket["awaiting_reply"] is True
    # Bob answering the notification Anna got, and anyone with a forged sender check, write
    # ordinary mail: their own tickets, as before.
    deliver(dovecot, mail_user, answer(f"Bob <{BOB}>", to_anna, "Mine now.\n"))
    deliver(dovecot, mail_user, answer(f"Anna Petrova <{ANNA}>", to_bob, "Not mine.\n"))
    forged = answer(f"Anna Petrova <{ANNA}>", to_anna, "Forged.\n").replace(
        b"dmarc=pass", b"dmarc=fail")
    deliver(dovecot, mail_user, forged)
    report = desk.json("fetch", "--no-notify")["channels"][0]
    assert (report["new_tickets"], report["followups"]) == (3, 0)
    notes = [m for m in desk.json("ticket", "show", "1")["ticket"]["messages"]
             if m["direction"] == "note"]
    assert len(notes) == 1
    settle(smtp_server, 2)  # nothing more was sent


def test_reply_recipients_are_editable_per_reply(desk, dovecot, mail_user, smtp_server):
    deliver(dovecot, mail_user, verified(make_mail("Access", cc="carl@customer.example")))
    desk("fetch", "--no-notify")
    desk("--as", "anna", "ticket", "reply", "1", "-m", "Only to you.", "--no-cc")
    desk("--as", "anna", "ticket", "reply", "1", "-m", "For accounts.",
         "--to", "accounts@customer.example", "--bcc", "audit@staff.example")
    desk("--as", "anna", "ticket", "reply", "1", "-m", "To you both.",
         "--to", "anna@customer.example", "--to", "dora@customer.example", "--no-cc")
    first, second, third = settle(smtp_server, 3)
    envelopes = [mail.rcpt_tos for mail in smtp_server.received]
    assert envelopes[0] == ["anna@customer.example"] and "Cc" not in first
    assert envelopes[1] == ["accounts@customer.example", "carl@customer.example",
                            "audit@staff.example"]
    assert "Bcc" not in second and "audit" not in second.as_string()
    # The greeting names the one person addressed, and only her.
    assert text_of(first).startswith("Hello Anna Customer,")
    assert text_of(second).startswith("Hello,")
    assert text_of(third).startswith("Hello,")
    ticket = desk.json("ticket", "show", "1")["ticket"]
    # People the agent addressed joined the ticket; the blind copy did not.
    assert ticket["participants"] == ["carl@customer.example", "accounts@customer.example",
                                      "dora@customer.example"]
    assert ticket["messages"][2]["bcc"] == [{"address": "audit@staff.example", "name": ""}]
    bad = desk("--as", "anna", "ticket", "reply", "1", "-m", "x", "--cc",
               "a@b.example\r\nBcc: evil@x.example", code=2)
    assert "control character" in bad.stderr
    # An address copied from a mail client with its name works; a list or a name hiding a
    # line break does not.
    for typed, why in (("a@x.example, Bo <b@y.example>", "not a valid email address"),
                       ("Evil\r\nBcc: e@x.example <a@b.example>", "control character"),
                       ("Name <a@b.example> more", "not a valid email address")):
        refused = desk("--as", "anna", "ticket", "reply", "1", "-m", "x", "--cc", typed,
                       code=2)
        assert why in refused.stderr and "Name <boss@example.com>" in refused.stderr
    assert len(desk.json("ticket", "show", "1")["ticket"]["messages"]) == 4
    named = desk.json("--as", "anna", "ticket", "reply", "1", "-m", "Named.", "--no-cc",
                      "--cc", '"Petrova, Dora" <Dora@Customer.Example>', "--bcc",
                      "Аудит <audit2@staff.example>")["reply"]
    assert (named["cc"], named["bcc"]) == (["Dora@customer.example"],
                                           ["audit2@staff.example"])
    assert settle(smtp_server, 4)[-1]["Cc"] == "Dora@customer.example"


def test_attachments_have_a_size_limit_from_the_config(desk, dovecot, mail_user, smtp_server,
                                                       tmp_path):
    deliver(dovecot, mail_user, verified(make_mail("Need files")))
    desk("fetch", "--no-notify")
    config = tmp_path / "eddymail.toml"
    config.write_text("[reply]\nmax_attachment_bytes = 1000\n")
    small, large = tmp_path / "small.txt", tmp_path / "large.bin"
    small.write_bytes(b"x" * 600)
    large.write_bytes(b"y" * 600)
    refused = desk("-c", str(config), "--as", "anna", "ticket", "reply", "1", "-m", "Files.",
                   "--attach", str(small), "--attach", str(large), code=2)
    assert "1200 bytes together, over the limit of 1000" in refused.stderr
    assert desk.json("outbox", "list", "--all")["outbox"] == []
    desk("-c", str(config), "--as", "anna", "ticket", "reply", "1", "-m", "File.",
         "--attach", str(small))
    (letter,) = settle(smtp_server, 1)
    (part,) = letter.iter_attachments()
    assert part.get_filename() == "small.txt" and part.get_content().encode() == b"x" * 600


def test_html_part_from_markdown_next_to_the_plain_text(desk, dovecot, mail_user, smtp_server):
    deliver(dovecot, mail_user, verified(make_mail("How to?")))
    desk("fetch", "--no-notify")
    text = ("Two steps:\n\n1. Open [the portal](https://portal.example/login)\n"
            "2. Press **Reset**\n\n<script>alert(1)</script> <b>raw</b> "
            "![pixel](https://tracker.example/p.gif) [bad](javascript:alert(1))")
    desk("--as", "anna", "ticket", "reply", "1", "-m", text, "--html")
    (letter,) = settle(smtp_server, 1)
    assert letter.get_content_type() == "multipart/alternative"
    plain = text_of(letter)
    html = letter.get_body(("html",)).get_content().replace("\r\n", "\n")
    assert "1. Open [the portal](https://portal.example/login)" in plain
    assert '<li>Open <a href="https://portal.example/login">the portal</a></li>' in html
    assert "<strong>Reset</strong>" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;raw" in html
    assert "<img" not in html and 'href="javascript' not in html
    # The frame stays plain text: greeting and signature are escaped, not read as Markdown.
    assert "Hello Anna Customer," in html and "Support engineer, Example Ltd" in html
    # The configured default: no HTML part unless asked.
    desk("--as", "anna", "ticket", "reply", "1", "-m", "Plain **only**.")
    assert settle(smtp_server, 2)[-1].get_content_type() == "text/plain"


def test_digest_collects_notifications_for_one_mail_per_interval(
        desk, dovecot, mail_user, smtp_server, database_path):
    desk("agent", "edit", "bob", "--delivery", "digest", "--digest-every", "1h")
    for subject in ("First problem", "Second problem"):
        deliver(dovecot, mail_user, verified(make_mail(subject)))
    desk("fetch")
    letters = settle(smtp_server, 4)  # the customer's registration + ticket_created, Anna x2
    assert sorted(to_address(letter) for letter in letters
                  if to_address(letter).endswith("staff.example")) == [ANNA, ANNA]
    assert desk.json("outbox", "retry")["results"] == []  # not due: the oldest is new
    with sqlite3.connect(database_path) as connection:  # an hour passes for the notices
        connection.execute("UPDATE staff_notice SET created_at = datetime(created_at, '-61 "
                           "minutes')")
    desk("outbox", "retry")
    digest = settle(smtp_server, 5)[-1]
    assert to_address(digest) == BOB
    assert digest["Subject"] == "Helpdesk digest: 2 new, 0 replied, 0 assigned"
    assert digest["Auto-Submitted"] == "auto-generated"
    body = text_of(digest)
    assert "#1  new ticket  First problem" in body and "#2  new ticket  Second problem" in body
    desk("outbox", "retry")
    desk("fetch")
    settle(smtp_server, 5)  # nothing left to sum up


def test_opt_outs_and_no_notify(desk, dovecot, mail_user, smtp_server):
    desk("agent", "edit", "anna", "--no-notify-new")
    desk("template", "disable", "registration")
    desk("template", "disable", "ticket_created")
    deliver(dovecot, mail_user, verified(make_mail("Only Bob hears")))
    desk("fetch")
    (letter,) = settle(smtp_server, 1)
    assert to_address(letter) == BOB
    deliver(dovecot, mail_user, verified(make_mail("Nobody hears")))
    desk("fetch", "--no-notify")
    settle(smtp_server, 1)
    desk("template", "disable", "staff_new_ticket")
    deliver(dovecot, mail_user, verified(make_mail("Switched off")))
    desk("fetch")
    settle(smtp_server, 1)


def test_staff_mail_carries_no_html_no_files_and_no_injected_headers(
        desk, dovecot, mail_user, smtp_server):
    desk("template", "disable", "registration")
    hostile = (
        "From: Mallory <mallory@customer.example>\r\n"
        f"To: {mail_user.address}\r\n"
        "Subject: =?utf-8?q?Hi=0D=0ABcc:_evil@x.example=0D=0A?= =?utf-8?b?4oCuZXVsYXY=?=\r\n"
        "Message-ID: <hostile@customer.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        '--m\r\nContent-Type: multipart/alternative; boundary="a"\r\n\r\n'
        "--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain words \x1b[2J here.\r\n"
        "--a\r\nContent-Type: text/html\r\n\r\n<p>HTML <b>secret-markup</b></p>\r\n--a--\r\n"
        "--m\r\nContent-Type: application/pdf\r\n"
        'Content-Disposition: attachment; filename="report.pdf"\r\n\r\n'
        "%PDF-1.4 secret-bytes\r\n--m--\r\n").encode()
    deliver(dovecot, mail_user, hostile)
    desk("fetch")
    letters = settle(smtp_server, 2)
    for letter, received in zip(letters, smtp_server.received, strict=True):
        assert received.rcpt_tos in ([ANNA], [BOB])
        assert "Bcc" not in letter and "\n" not in letter["Subject"]
        assert letter.get_content_type() == "text/plain"  # no HTML part, no attachment
        body = text_of(letter)
        assert "secret-markup" not in body and "secret-bytes" not in received.data.decode()
        assert "Files: report.pdf (21 bytes)" in body
        assert "\\x1b[2J" in body and "\x1b" not in body  # shown, never obeyed
        assert "\u202e" not in letter["Subject"] and "\u202e" not in body
        assert "\\u202eeulav" in body  # the reversal spelt out where the subject is quoted
        # The provider vouched for nobody: the agent is told, as ticket show tells them.
        assert "From: Mallory <mallory@customer.example>" in body
        assert "Sender NOT VERIFIED" in body


def test_staff_mail_warns_in_the_teams_language(desk, dovecot, mail_user, smtp_server):
    desk("settings", "set", "language", "ru")
    deliver(dovecot, mail_user, make_mail("Без проверки", sender="Иван <ivan@customer.example>"))
    forged = make_mail("Подделка", sender="Пётр <petr@customer.example>")
    deliver(dovecot, mail_user, (f"Authentication-Results: {AUTHSERV}; dmarc=fail "
                                 "header.from=customer.example\r\n").encode() + forged)
    desk("fetch")
    bodies = [text_of(letter) for letter in settle(smtp_server, 4)]
    assert sum("Отправитель НЕ ПРОВЕРЕН" in body for body in bodies) == 2  # Anna and Bob
    assert sum("Проверка отправителя НЕ ПРОЙДЕНА" in body for body in bodies) == 2
    assert not any("NOT VERIFIED" in body or "FAILED" in body for body in bodies)
    assert sum("От: Иван <ivan@customer.example>" in body for body in bodies) == 2


def test_a_failing_template_or_address_never_fails_the_ingest(
        desk, dovecot, mail_user, smtp_server, database_path):
    # Saving it is refused now (it fails with the sample values); an older eddymail stored it.
    with sqlite3.connect(database_path) as connection:
        connection.execute(
            "INSERT INTO template (name, language, source, enabled, updated_at) VALUES "
            "('staff_new_ticket', 'en', ?, 1, '2026-01-01')",
            ("Subject: [#{{ ticket.id }}] New\n\n{{ 1 // (ticket.id - ticket.id) }}\n",))
    desk("template", "disable", "registration")
    desk("template", "disable", "ticket_created")
    desk("agent", "edit", "bob", "--email", mail_user.address)  # our own mailbox: a loop
    for subject in ("One", "Two"):
        deliver(dovecot, mail_user, verified(make_mail(subject)))
    report = desk.json("fetch")
    assert report["channels"][0]["new_tickets"] == 2
    assert len(desk.json("ticket", "list")["tickets"]) == 2
    logged = [entry["message"] for entry in desk.json("log")["entries"]]
    assert sum("staff_new_ticket to anna about ticket #1 not sent" in m for m in logged) == 1
    assert sum("one of our own channels" in m for m in logged) == 1  # once per run
    assert smtp_server.received == []
