"""Issue 11, class 1: no sender address may roll back a message or its batch.

Every address RFC 5322 and RFC 6531 allow becomes a ticket. Where an automatic mail cannot
be sent to it (SMTP without SMTPUTF8 cannot carry a Cyrillic local part; a quoted local
part or an address literal is refused by the outgoing checks), that mail is skipped with an
error-log entry: never the ingest of the message, never the batch.
"""

from __future__ import annotations

import pytest

from tests.trust.conftest import letters, raw_mail

# (From header, the address the ticket's requester must be)
UNSENDABLE = [
    ('"john smith"@example.com', '"john smith"@example.com'),
    ('"Jo Q" <"jo..q"@example.org>', '"jo..q"@example.org'),
    ("иван@пример.рф", "иван@пример.рф"),
    ("Иван Петров <иван.петров@example.com>", "иван.петров@example.com"),
    ("jöhn@exämple.com", "jöhn@exämple.com"),
    ("José <josé@correo.es>", "josé@correo.es"),
    ("user@[192.0.2.1]", "user@[192.0.2.1]"),
    ("Old Host <admin@[198.51.100.7]>", "admin@[198.51.100.7]"),
    ("v6 <user@[IPv6:2001:db8::1]>", "user@[ipv6:2001:db8::1]"),
]


@pytest.mark.parametrize(("sender", "requester"), UNSENDABLE)
def test_a_pipe_makes_a_ticket_for_any_sender_and_skips_the_mail_it_cannot_send(
        eddymail, sending_channel, sender, requester):
    piped = eddymail.json("ingest", "--channel", sending_channel,
                          input=raw_mail(sender).decode())
    assert piped["messages"][0]["status"] == "new_ticket"
    (ticket,) = eddymail.json("ticket", "list")["tickets"]
    assert ticket["requester"].lower() == requester.lower()
    assert eddymail.json("outbox", "list")["outbox"] == []
    (entry,) = eddymail.json("log")["entries"]
    assert "registration notification" in entry["message"] and "not sent" in entry["message"]


def test_one_odd_sender_does_not_roll_back_the_batch(eddymail, helpdesk, dovecot, smtp_server):
    """A batch of a plain sender, then every unsendable form, then a plain sender: every
    message becomes a ticket in one fetch, the plain senders get their notification, and
    the next fetch has nothing left to do."""
    senders = ["Anna <anna@customer.example>", *(s for s, _ in UNSENDABLE),
               "bob@other.example"]
    for number, sender in enumerate(senders):
        dovecot.deliver(helpdesk, raw_mail(sender, f"mail {number}"))
    (report,) = eddymail.json("fetch")["channels"]
    assert report["ok"] and report["new_tickets"] == len(senders), report
    assert len(eddymail.json("ticket", "list", "--limit", "50")["tickets"]) == len(senders)
    received = letters(smtp_server, 2)
    assert sorted(str(letter["To"]) for letter in received) == [
        "anna@customer.example", "bob@other.example"]
    skipped = [e for e in eddymail.json("log")["entries"] if "not sent" in e["message"]]
    assert len(skipped) == len(UNSENDABLE)
    (again,) = eddymail.json("fetch")["channels"]
    assert again["ok"] and again["fetched"] == 0
