"""Issue 11, class 4: automatic mail never carries words a stranger wrote.

Anyone can send mail with any From: a display name and a subject such as "Your account is
locked, log in at http://..." used to come back from the company's own mailbox (DKIM and
all) in the registration and ticket-created notifications, the subject in their Subject
header. They now hold only what the team wrote; the variables offered to their templates
follow the same rule; and they carry Reply-To: the department's fetched mailbox.
"""

from __future__ import annotations

import email
import sqlite3
from email.policy import default as default_policy

import pytest

from tests.trust.conftest import letters, raw_mail

PHISHING = {
    "plain": ("Security Team", "Your account is locked, log in at http://evil.example/x",
              "Log in at http://evil.example/x within 24 hours."),
    "encoded words": ("=?utf-8?b?0KHQu9GD0LbQsdCwINCx0LXQt9C+0L/QsNGB0L3QvtGB0YLQuA==?=",
                      "=?utf-8?q?Account_locked=3A_visit_evil=2Eexample?=",
                      "visit evil.example now"),
    "cyrillic": ("Служба безопасности", "Ваш счёт заблокирован: evil.example/вход",
                 "Перейдите на evil.example/вход"),
    "lookalike address": ('"support@bank.example"', "Re: your transfer to evil.example",
                          "Confirm at evil.example"),
}
STRANGER_WORDS = ("evil", "locked", "Security", "заблокирован", "Служба", "Служба",
                  "bank.example", "transfer", "Account")


def outbox_mail(database_path) -> list[email.message.EmailMessage]:
    with sqlite3.connect(database_path) as connection:
        rows = connection.execute("SELECT raw FROM outbox_item ORDER BY id").fetchall()
    return [email.message_from_bytes(bytes(raw), policy=default_policy)  # type: ignore[misc]
            for (raw,) in rows]


def assert_team_words_only(mail, ticket: int) -> None:
    text = mail.as_string()
    for word in STRANGER_WORDS:
        assert word not in text, (word, text)
    assert str(mail["Subject"]).startswith(f"[#{ticket}] ")


@pytest.mark.parametrize("case", PHISHING, ids=PHISHING.keys())
@pytest.mark.parametrize("language", ["en", "ru"])
def test_notifications_hold_no_stranger_s_words(eddymail, sending_channel, database_path,
                                                case, language):
    eddymail("settings", "set", "language", language)
    name, subject, body = PHISHING[case]
    sender = f"{name} <victim@customer.example>"
    for _ in (1, 2):  # registration, then ticket_created for the known sender
        eddymail("ingest", "--channel", sending_channel,
                 input=raw_mail(sender, subject, body=body + "\r\n").decode())
    registration, created = outbox_mail(database_path)
    assert_team_words_only(registration, 1)
    assert_team_words_only(created, 2)
    assert "victim" not in registration.get_content() + created.get_content()


@pytest.mark.parametrize("variable", ["user.name", "user.email", "ticket.subject"])
@pytest.mark.parametrize("template", ["registration", "ticket_created"])
def test_their_templates_cannot_use_a_stranger_s_words(eddymail, tmp_path, template, variable):
    source = tmp_path / "t.txt"
    source.write_text(f"Subject: [#{{{{ ticket.id }}}}] Hi\n\nDear {{{{ {variable} }}}}\n")
    refused = eddymail("template", "edit", template, "--file", str(source), code=2)
    assert "unknown variable" in refused.stderr


def test_the_reply_frame_keeps_the_customer_s_name_and_subject(eddymail):
    """Staff choose to send a reply: its frame may still greet the customer by name."""
    shown = eddymail.json("template", "show", "reply")["template"]
    assert {"user.name", "ticket.subject"} <= {v["name"] for v in shown["variables"]}


def test_notifications_from_the_system_channel_reply_to_the_department(
        eddymail, support, database_path):
    """The system channel is a send-only no-reply mailbox; answers must reach a mailbox
    that is fetched: the department's outgoing one if fetched, else another fetched one."""
    eddymail("department", "add", "Sales")
    smtp = ["--smtp-host", "127.0.0.1", "--smtp-port", "9", "--smtp-security", "none"]
    imap = ["--protocol", "imap", "--host", "127.0.0.1", "--port", "9", "--security", "none"]
    support("noreply", "--email", "noreply@example.test", "--protocol", "none", *smtp)
    eddymail("settings", "set", "system-channel", "noreply")
    support("help", "--email", "help@example.test", *imap, *smtp)
    eddymail("channel", "add", "sales-out", "--department", "Sales", "--email",
             "sales-out@example.test", "--protocol", "none", *smtp, "--password-stdin",
             input="pw\n")
    eddymail("channel", "add", "sales-in", "--department", "Sales", "--email",
             "sales@example.test", *imap, "--password-stdin", input="pw\n")
    eddymail("department", "edit", "Sales", "--outgoing-channel", "sales-out")
    eddymail("department", "add", "Nowhere")
    for department, number in (("Support", 1), ("Sales", 2), ("Nowhere", 3)):
        eddymail("ingest", "--department", department,
                 input=raw_mail(f"c{number}@customer.example", "Hi").decode())
    replies = [(str(m["From"]), m["Reply-To"] and str(m["Reply-To"]))
               for m in outbox_mail(database_path)]
    assert [reply for _, reply in replies] == ["help@example.test", "sales@example.test", None]
    assert all("noreply@example.test" in sender for sender, _ in replies)


def test_a_notification_on_the_wire(eddymail, helpdesk, dovecot, smtp_server):
    dovecot.deliver(helpdesk, raw_mail('"Bank Security" <victim@customer.example>',
                                       "Account locked: log in at evil.example"))
    eddymail("fetch")
    (letter,) = letters(smtp_server, 1)
    assert_team_words_only(letter, 1)
    assert str(letter["Reply-To"]) == helpdesk.address
    assert letter["Auto-Submitted"] == "auto-replied"
