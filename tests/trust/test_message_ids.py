"""Issue 11, class 2: a reused Message-ID never loses a different message.

The ID alone made a later message "already known". Now a copy must also have the same
sender, Date and text: a true duplicate (the same mail by a second route, with other trace
headers) is still skipped; a different message under a known ID is stored, threaded by its
own evidence, and marked.
"""

from __future__ import annotations

from tests.trust.conftest import raw_mail

ID = "<reused-1@client.example>"


def ingest(eddymail, *raws: bytes) -> list[dict]:
    outcomes = []
    for raw in raws:
        outcomes += eddymail.json("ingest", "--department", "Support",
                                  input=raw.decode())["messages"]
    return outcomes


def reused_marks(eddymail, ticket: int) -> list[bool]:
    messages = eddymail.json("ticket", "show", str(ticket))["ticket"]["messages"]
    return [m["message_id_reused"] for m in messages if m["direction"] == "in"]


def test_a_forger_pre_empting_the_id_loses_nobody_s_mail(eddymail, support):
    forged = raw_mail("Mallory <mallory@evil.example>", "Invoice", message_id=ID,
                      body="Pay to account 666.\r\n")
    real = raw_mail("Anna <anna@customer.example>", "Invoice", message_id=ID,
                    body="Where is my invoice?\r\n")
    assert [o["status"] for o in ingest(eddymail, forged, real)] == ["new_ticket", "new_ticket"]
    tickets = {t["requester"]: t for t in eddymail.json("ticket", "list")["tickets"]}
    assert set(tickets) == {"mallory@evil.example", "anna@customer.example"}
    assert reused_marks(eddymail, tickets["anna@customer.example"]["id"]) == [True]
    assert reused_marks(eddymail, tickets["mallory@evil.example"]["id"]) == [False]
    shown = eddymail("ticket", "show", str(tickets["anna@customer.example"]["id"])).stdout
    assert "Message-ID came before with a different message" in shown


def test_a_client_reusing_its_id_is_threaded_by_the_other_evidence(eddymail, support):
    first = raw_mail("Anna <anna@customer.example>", "Printer", message_id=ID,
                     body="The printer is on fire.\r\n")
    again = raw_mail("Anna <anna@customer.example>", "Re: [#1] Printer", message_id=ID,
                     body="Now the desk is on fire too.\r\n")
    unrelated = raw_mail("Anna <anna@customer.example>", "Holiday", message_id=ID,
                         body="A new question.\r\n")
    outcomes = ingest(eddymail, first, again, unrelated)
    assert [(o["status"], o["ticket_id"]) for o in outcomes] == [
        ("new_ticket", 1), ("followup", 1), ("new_ticket", 2)]
    assert reused_marks(eddymail, 1) == [False, True]
    assert reused_marks(eddymail, 2) == [True]


def test_a_true_duplicate_by_another_route_is_still_skipped(eddymail, support):
    mail = raw_mail("Anna <anna@customer.example>", "Printer", message_id=ID,
                    body="The printer is on fire.\r\n")
    via_list = b"Received: from lists.example by mx.example; Thu, 26 Nov 2026\r\n" + mail
    refolded = mail.replace(b"The printer is on fire.", b"The printer  is on\r\nfire.")
    outcomes = ingest(eddymail, mail, mail, via_list, refolded)
    assert [o["status"] for o in outcomes] == ["new_ticket", "duplicate", "duplicate",
                                               "duplicate"]
    assert len(eddymail.json("ticket", "list")["tickets"]) == 1


def test_an_id_reused_several_times_keeps_each_message_once(eddymail, support):
    mails = [raw_mail(f"Person {n} <p{n}@customer.example>", f"Question {n}", message_id=ID,
                      body=f"Question number {n}.\r\n") for n in range(4)]
    statuses = [o["status"] for o in ingest(eddymail, *mails, *reversed(mails))]
    assert statuses == ["new_ticket"] * 4 + ["duplicate"] * 4
    tickets = eddymail.json("ticket", "list")["tickets"]
    assert sorted(t["subject"] for t in tickets) == [f"Question {n}" for n in range(4)]


def test_fetch_stores_a_different_message_under_a_known_id(eddymail, helpdesk, dovecot):
    dovecot.deliver(helpdesk, raw_mail("Anna <anna@customer.example>", "First", message_id=ID,
                                       body="One.\r\n"))
    eddymail("fetch", "--no-notify")
    dovecot.deliver(helpdesk, raw_mail("Bob <bob@other.example>", "Second", message_id=ID,
                                       body="Two.\r\n"))
    (report,) = eddymail.json("fetch", "--no-notify")["channels"]
    assert (report["new_tickets"], report["duplicates"]) == (1, 0), report
    assert sorted(t["subject"] for t in eddymail.json("ticket", "list")["tickets"]) == [
        "First", "Second"]
