"""Identity and threading under attack: strangers, forged headers, lying senders, floods.

Anyone on the internet can write any From, Cc, Reply-To, In-Reply-To or subject tag. These
tests check that none of it lets a stranger read, join or reopen someone else's ticket, that
a sender who cannot be identified (or failed the provider's sender verification) registers
nobody and triggers no mail, and that no flood of forged mail turns the helpdesk into a
spam cannon. Outgoing mail is counted where it really arrives: on the test SMTP server.
"""

from __future__ import annotations

import email
import json
import mailbox
import re
import sqlite3
import time
from email.policy import default as default_policy
from pathlib import Path

import pytest

from eddymail.mail.message.authresults import FAIL, MISSING, NONE, PASS
from eddymail.mail.message.authresults import verify_sender as verify_results
from eddymail.mail.message.parse import parse_message
from tests.mailfactory import make_mail

AUTHSERV = "mx.example.test"
ANNA = "Anna Customer <anna@customer.example>"
MALLORY = "Mallory <mallory@evil.example>"
HISTORY = "My account number is 4242-SECRET and the printer is on fire."


@pytest.fixture
def desk(eddymail, support, smtp_server):
    """A Support channel that can send (the test SMTP server) and trusts ``mx.example.test``.

    Mail comes in through ``eddymail ingest --channel support`` (the same pipeline as fetch);
    notifications and replies go out through the real SMTP server.
    """
    smtp_server.add_user("helpdesk", "smtp-password")
    support("support", "--email", "help@example.test", "--login", "helpdesk",
            "--protocol", "none", "--smtp-host", smtp_server.host,
            "--smtp-port", str(smtp_server.port), "--smtp-security", "starttls",
            "--ca-file", str(smtp_server.ca_file), "--authserv-id", AUTHSERV,
            password="smtp-password")
    return smtp_server


class Inbox:
    """Feeds raw messages to ``eddymail ingest --channel support``, one file each."""

    def __init__(self, eddymail, directory: Path) -> None:
        self.eddymail = eddymail
        self.directory = directory
        self.count = 0

    def __call__(self, *raws: bytes, notify: bool = True) -> list[dict]:
        """Ingest ``raws`` in order; return the per-message outcomes."""
        paths = []
        for raw in map(stamped, raws):
            self.count += 1
            path = self.directory / f"mail-{self.count}.eml"
            path.write_bytes(raw)
            paths.append(str(path))
        options = [] if notify else ["--no-notify"]
        return self.eddymail.json("ingest", "--channel", "support", *options,
                                  *paths)["messages"]


@pytest.fixture
def inbox(eddymail, tmp_path) -> Inbox:
    """Deliver mail to the Support channel."""
    directory = tmp_path / "incoming"
    directory.mkdir()
    return Inbox(eddymail, directory)


def settle(smtp_server, expected: int) -> list:
    """Everything the SMTP server received, after waiting for ``expected`` and a moment more
    (so mail that should not have come has had its chance to arrive)."""
    if expected:
        smtp_server.wait_for(expected)
    time.sleep(0.3)
    return list(smtp_server.received)


def letters(smtp_server) -> list[email.message.EmailMessage]:
    """The received mail, parsed."""
    return [email.message_from_bytes(m.data, policy=default_policy)
            for m in smtp_server.received]


def verify_sender(raw: bytes, authserv_id: str, from_domain: str) -> str:
    """The verdict on a raw message, read as ingest reads it: from the parsed headers."""
    return verify_results(parse_message(raw).authentication_results, authserv_id, from_domain)


def authenticated(raw: bytes, results: str, authserv_id: str = AUTHSERV) -> bytes:
    """``raw`` with an Authentication-Results header on top, as the provider's MX adds it."""
    return f"Authentication-Results: {authserv_id}; {results}\r\n".encode() + raw


def stamped(raw: bytes) -> bytes:
    """``raw`` as the provider's MX hands it on: with its own Authentication-Results header
    (RFC 8601 "none": no checks ran) unless the test wrote one. Mail without any header
    from the trusted authserv-id is unverified (issue 11, class 7)."""
    if b"Authentication-Results:" in raw.split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]:
        return raw
    line_end = b"\r\n" if raw.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    return f"Authentication-Results: {AUTHSERV}; none".encode() + line_end + raw


def open_ticket_with_history(eddymail, inbox, desk) -> str:
    """Ticket #1 from Anna, answered by staff; returns the Message-ID of the sent reply."""
    inbox(make_mail("Printer on fire", body=HISTORY + "\n",
                    message_id="<first@customer.example>"), notify=False)
    eddymail("ticket", "reply", "1", "-m", "Staff answer: unplug it, account 4242-SECRET.")
    (reply,) = settle(desk, 1)
    return email.message_from_bytes(reply.data, policy=default_policy)["Message-ID"]


def assert_ticket_untouched(eddymail, before: dict) -> None:
    after = eddymail.json("ticket", "show", "1")["ticket"]
    assert after["status"] == before["status"] == "closed"
    assert after["participants"] == before["participants"]
    assert len(after["messages"]) == len(before["messages"])


def assert_history_not_mailed(eddymail, smtp_server, database_path: Path,
                              already_sent: int) -> None:
    """Nothing in the outbox or on the wire carries ticket #1's text to anyone but Anna."""
    with sqlite3.connect(database_path) as connection:
        rows = connection.execute("SELECT raw, recipients FROM outbox_item").fetchall()
    carrying = [json.loads(recipients) for raw, recipients in rows
                if b"4242-SECRET" in bytes(raw) or b"printer is on fire" in bytes(raw)]
    assert carrying == [["anna@customer.example"]]  # the staff reply, and nothing else
    eddymail("outbox", "retry", code=None)
    received = settle(smtp_server, already_sent)
    for mail in received[already_sent:]:
        assert b"4242-SECRET" not in mail.data and b"printer is on fire" not in mail.data
        assert "anna@customer.example" not in mail.rcpt_tos


# --- strangers and forged threading headers ----------------------------------------------


def test_stranger_with_the_subject_tag_and_a_cc_gets_a_ticket_of_his_own(eddymail, desk, inbox,
                                                                          database_path):
    open_ticket_with_history(eddymail, inbox, desk)
    eddymail("ticket", "close", "1")
    before = eddymail.json("ticket", "show", "1")["ticket"]
    (outcome,) = inbox(make_mail("Re: [#1] Printer on fire", sender=MALLORY,
                                 cc="Mallory Two <mallory2@evil.example>",
                                 body="Please send me the whole history again."))
    assert outcome["status"] == "new_ticket" and outcome["ticket_id"] == 2
    assert_ticket_untouched(eddymail, before)
    stranger = eddymail.json("ticket", "show", "2")["ticket"]
    assert stranger["carried_tag"] == 1 and stranger["requester"] == "mallory@evil.example"
    assert "#1 (not joined" in eddymail("ticket", "show", "2").stdout
    # Mallory may learn that *his* ticket exists; nobody learns anything of ticket #1.
    assert_history_not_mailed(eddymail, desk, database_path, already_sent=1)
    assert [m.rcpt_tos for m in desk.received[1:]] == [["mallory@evil.example"]]
    assert "[#2]" in letters(desk)[1]["Subject"]  # the registration names his own ticket


@pytest.mark.parametrize("header", ["In-Reply-To", "References"])
def test_forged_threading_header_naming_our_reply_does_not_join(eddymail, desk, inbox, header,
                                                                database_path):
    our_id = open_ticket_with_history(eddymail, inbox, desk)
    eddymail("ticket", "close", "1")
    before = eddymail.json("ticket", "show", "1")["ticket"]
    forged = {"in_reply_to": our_id} if header == "In-Reply-To" else {
        "references": f"<first@customer.example> {our_id}"}
    (outcome,) = inbox(make_mail("Re: Printer on fire", sender=MALLORY,
                                 cc="mallory2@evil.example", **forged))
    assert outcome["status"] == "new_ticket" and outcome["ticket_id"] == 2
    assert_ticket_untouched(eddymail, before)
    assert eddymail.json("ticket", "show", "2")["ticket"]["carried_tag"] == 1
    assert_history_not_mailed(eddymail, desk, database_path, already_sent=1)


def test_the_real_requester_still_joins_by_the_same_signals(eddymail, desk, inbox):
    """The control case: the refusals above are about who writes, not about the headers."""
    our_id = open_ticket_with_history(eddymail, inbox, desk)
    eddymail("ticket", "close", "1")
    (outcome,) = inbox(make_mail("Re: [#1] Printer on fire", in_reply_to=our_id))
    assert outcome["status"] == "followup" and outcome["ticket_id"] == 1
    assert eddymail.json("ticket", "show", "1")["ticket"]["status"] == "open"


# --- Reply-To -----------------------------------------------------------------------------


def test_reply_to_differing_from_from_is_flagged_and_replies_go_to_the_requester(
        eddymail, desk, inbox):
    inbox(make_mail("Redirect me", headers={"Reply-To": "Thief <thief@evil.example>"}),
          make_mail("Same person", sender="Bob <bob@customer.example>",
                    headers={"Reply-To": "BOB@customer.example"}), notify=False)
    first, second = (eddymail.json("ticket", "show", str(n))["ticket"]["messages"][0]
                     for n in (1, 2))
    assert first["reply_to_differs"] is True
    assert first["reply_to"] == [{"address": "thief@evil.example", "name": "Thief"}]
    assert second["reply_to_differs"] is False  # the same address, other case
    shown = eddymail("ticket", "show", "1").stdout
    assert "Reply-To differs from From: thief@evil.example" in shown
    eddymail("ticket", "reply", "1", "-m", "Answer.")
    (sent,) = settle(desk, 1)
    assert sent.rcpt_tos == ["anna@customer.example"]
    assert "thief@evil.example" not in [u["email"] for u in eddymail.json("user", "list")["users"]]


# --- who is the sender? ------------------------------------------------------------------

UNIDENTIFIED = {
    "several": "anna@customer.example, Mallory <mallory@evil.example>",
    "unparseable": "this is not an address at all",
    "garbage and one address": "@@@, anna@customer.example",
    "empty": "",
}
# What the ticket names as its requester: every address the From held, or nobody.
REQUESTERS = {
    "several": "anna@customer.example, mallory@evil.example",
    "unparseable": "",
    "garbage and one address": "anna@customer.example",
    "empty": "",
}


@pytest.mark.parametrize("case", UNIDENTIFIED)
def test_unidentified_sender_gets_a_ticket_but_no_user_and_no_mail(eddymail, desk, inbox,
                                                                    case):
    (outcome,) = inbox(make_mail("Who am I", sender=UNIDENTIFIED[case],
                                 cc="carl@customer.example"))
    assert outcome["status"] == "new_ticket"
    ticket = eddymail.json("ticket", "show", str(outcome["ticket_id"]))["ticket"]
    assert ticket["subject"] == "Who am I" and ticket["requester"] == REQUESTERS[case]
    # Neither the sender nor the people he Cc'd are registered; nobody gets mail.
    assert eddymail.json("user", "list")["users"] == []
    assert ticket["participants"] == []
    assert eddymail.json("outbox", "list", "--all")["outbox"] == []
    if not REQUESTERS[case]:
        assert "(unidentified sender)" in eddymail("ticket", "show", "1").stdout


@pytest.mark.parametrize("case", ["several", "garbage and one address"])
def test_unidentified_sender_naming_the_requester_does_not_join_or_reopen(eddymail, desk,
                                                                          inbox, case):
    sender = UNIDENTIFIED[case]
    inbox(make_mail("Printer on fire", body=HISTORY + "\n",
                    message_id="<first@customer.example>"), notify=False)
    eddymail("ticket", "close", "1")
    (outcome,) = inbox(make_mail("Re: [#1] Printer on fire", sender=sender,
                                 in_reply_to="<first@customer.example>"))
    assert outcome["status"] == "new_ticket" and outcome["ticket_id"] == 2
    ticket = eddymail.json("ticket", "show", "1")["ticket"]
    assert ticket["status"] == "closed" and len(ticket["messages"]) == 2  # its own + the close
    assert eddymail.json("outbox", "list", "--all")["outbox"] == []
    # Every address the From named is shown, not just the one the sender wanted seen.
    shown = eddymail("ticket", "show", "2").stdout
    if "mallory" in sender:
        assert "mallory@evil.example" in shown


def test_several_from_addresses_are_all_shown_for_the_message(eddymail, desk, inbox):
    inbox(make_mail("Two senders", sender=UNIDENTIFIED["several"]))
    (message,) = eddymail.json("ticket", "show", "1")["ticket"]["messages"]
    assert "mallory@evil.example" in message["from"]["address"]
    assert "mallory@evil.example" in eddymail("ticket", "list").stdout


def test_display_name_that_looks_like_another_address(eddymail, desk, inbox):
    inbox(make_mail("Your account", sender='"support@bank.example" <evil@x.example>'))
    for args in (("ticket", "list"), ("ticket", "show", "1")):
        shown = eddymail(*args).stdout
        assert "evil@x.example" in shown
        if "support@bank.example" in shown:
            assert shown.index("evil@x.example") < shown.index("support@bank.example")
    shown = eddymail("ticket", "show", "1").stdout
    header = next(line for line in shown.splitlines() if "from customer" in line)
    assert re.search(r"from customer: evil@x\.example", header)
    (ticket,) = eddymail.json("ticket", "list")["tickets"]
    assert ticket["requester"] == "evil@x.example"
    # The name is whatever the sender typed; one that is another address is not adopted as
    # the customer's name (it would greet him as the bank in every later letter).
    (user,) = eddymail.json("user", "list")["users"]
    assert user["email"] == "evil@x.example" and user["name"] == ""
    assert ticket["requester_name"] == ""


# --- sender verification (Authentication-Results) -----------------------------------------

SPF_PASS = "spf=pass smtp.mailfrom=anna@customer.example"
VERDICTS = {
    "dmarc pass": ("dmarc=pass header.from=customer.example", PASS),
    "dmarc fail": ("dmarc=fail header.from=customer.example; " + SPF_PASS, FAIL),
    "dmarc pass with a comment": (
        "dmarc=pass (p=REJECT sp=REJECT; dis=NONE) header.from=customer.example", PASS),
    "dmarc pass for another From domain": (
        "dmarc=pass header.from=evil.example; spf=pass smtp.mailfrom=x@evil.example", FAIL),
    "spf aligned": (SPF_PASS, PASS),
    "spf domain only": ("spf=pass smtp.mailfrom=customer.example", PASS),
    "spf unaligned": ("spf=pass smtp.mailfrom=bounce@evil.example", FAIL),
    "spf of a null sender by its helo": ("spf=pass smtp.helo=mx.customer.example", PASS),
    "spf softfail aligned": ("spf=softfail smtp.mailfrom=anna@customer.example", FAIL),
    "dkim d= parent of From subdomain": ("dkim=pass header.d=customer.example", PASS),
    "dkim i= aligned": ("dkim=pass header.i=@mail.customer.example", PASS),
    "dkim unaligned": ("dkim=pass header.d=evil.example; spf=fail smtp.mailfrom=customer.example",
                       FAIL),
    "dkim with version": ("dkim/1=pass header.d=customer.example", PASS),
    "nothing checked": ("none", NONE),
    "comments everywhere": (
        "(the MX) spf (sender policy) = pass (ip 192.0.2.1; ok) smtp.mailfrom (envelope) = "
        "anna@customer.example", PASS),
    "quoted local part smuggling a verdict": (
        'spf=pass smtp.mailfrom="x; dmarc=pass (p=none"@evil.example', FAIL),
    "quoted local part smuggling an aligned spf": (
        'spf=fail smtp.mailfrom="a;spf=pass smtp.mailfrom=anna@customer.example x"@evil.example',
        FAIL),
}


@pytest.mark.parametrize("results, verdict", VERDICTS.values(), ids=VERDICTS.keys())
def test_verdict_of_the_trusted_header(results, verdict):
    raw = authenticated(make_mail(), results)
    assert verify_sender(raw, AUTHSERV, "customer.example") == verdict


def test_only_the_topmost_header_with_our_authserv_id_counts():
    raw = make_mail()
    # Above ours: another server's opinion; below ours: whatever the sender wrote himself.
    failing = (f"Authentication-Results: other.example; dmarc=pass header.from=customer.example"
               f"\r\nAuthentication-Results: {AUTHSERV}; dmarc=fail header.from=customer.example"
               f"\r\nAuthentication-Results: {AUTHSERV}; dmarc=pass header.from=customer.example"
               "\r\n").encode() + raw
    assert verify_sender(failing, AUTHSERV, "customer.example") == FAIL
    passing = (f"Authentication-Results: other.example; dmarc=fail header.from=customer.example"
               f"\r\nAuthentication-Results: {AUTHSERV.upper()} 1; spf=pass\r\n"
               "\tsmtp.mailfrom=anna@customer.example;\r\n dkim=none\r\n"
               f"Authentication-Results: {AUTHSERV}; dmarc=fail header.from=customer.example"
               "\r\n").encode() + raw
    assert verify_sender(passing, AUTHSERV, "customer.example") == PASS
    lookalike = (f"Authentication-Results: {AUTHSERV}.evil.example; dmarc=pass\r\n"
                 f"Authentication-Results: x{AUTHSERV}; dmarc=pass\r\n").encode() + raw
    assert verify_sender(lookalike, AUTHSERV, "customer.example") == MISSING
    assert verify_sender(raw, AUTHSERV, "customer.example") == MISSING


def test_failed_verification_is_stored_marked_and_powerless(eddymail, desk, inbox):
    inbox(make_mail("Printer on fire", message_id="<first@customer.example>"), notify=False)
    eddymail("ticket", "close", "1")
    # Right tag, right In-Reply-To, the real requester's address: only the verdict is wrong.
    forged = authenticated(
        make_mail("Re: [#1] Printer on fire", in_reply_to="<first@customer.example>",
                  references="<first@customer.example>", cc="carl@customer.example",
                  sender="Anna <anna@customer.example>"),
        "spf=pass smtp.mailfrom=bounce@evil.example; dkim=none; "
        "dmarc=fail (p=none) header.from=customer.example")
    stranger = authenticated(make_mail("Hello", sender="New Person <new@elsewhere.example>"),
                             "dmarc=fail header.from=elsewhere.example")
    outcomes = inbox(forged, stranger)
    assert [o["status"] for o in outcomes] == ["new_ticket", "new_ticket"]
    first = eddymail.json("ticket", "show", "1")["ticket"]
    assert first["status"] == "closed" and first["participants"] == []
    for number in (2, 3):
        (message,) = eddymail.json("ticket", "show", str(number))["ticket"]["messages"]
        assert message["auth_status"] == "fail"
        assert "Sender verification FAILED" in eddymail("ticket", "show", str(number)).stdout
    # Only Anna, from her own first (unverified, not failed) mail; not Carl, not the stranger.
    assert [u["email"] for u in eddymail.json("user", "list")["users"]] == [
        "anna@customer.example"]
    assert eddymail.json("outbox", "list", "--all")["outbox"] == []
    eddymail("outbox", "retry")
    assert settle(desk, 0) == []


def test_passing_and_unchecked_mail_behave_normally(eddymail, desk, inbox):
    passing = authenticated(make_mail("Printer on fire", message_id="<first@customer.example>"),
                            "spf=pass smtp.mailfrom=anna@customer.example; "
                            "dkim=pass header.d=customer.example; "
                            "dmarc=pass header.from=customer.example")
    unchecked = make_mail("No header at all", sender="Bob <bob@other.example>")
    outcomes = inbox(passing, unchecked)
    assert [o["status"] for o in outcomes] == ["new_ticket", "new_ticket"]
    statuses = [eddymail.json("ticket", "show", str(n))["ticket"]["messages"][0]["auth_status"]
                for n in (1, 2)]
    assert statuses == ["pass", "none"]
    assert "Sender verification" not in eddymail("ticket", "show", "1").stdout
    users = sorted(u["email"] for u in eddymail.json("user", "list")["users"])
    assert users == ["anna@customer.example", "bob@other.example"]
    eddymail("ticket", "close", "1")
    (followup,) = inbox(authenticated(
        make_mail("Re: [#1] Printer on fire", in_reply_to="<first@customer.example>"),
        "dmarc=pass header.from=customer.example"))
    assert followup["status"] == "followup" and followup["ticket_id"] == 1
    assert eddymail.json("ticket", "show", "1")["ticket"]["status"] == "open"
    eddymail("outbox", "retry")
    assert sorted(m.rcpt_tos[0] for m in settle(desk, 2)) == ["anna@customer.example",
                                                              "bob@other.example"]


def test_a_forged_passing_header_below_the_real_failing_one_changes_nothing(eddymail, desk,
                                                                           inbox):
    raw = make_mail("Hello", sender="New Person <new@elsewhere.example>")
    forged = (f"Authentication-Results: {AUTHSERV}; dmarc=fail header.from=elsewhere.example\r\n"
              f"Authentication-Results: {AUTHSERV}; dmarc=pass header.from=elsewhere.example\r\n"
              ).encode() + raw
    inbox(forged)
    (message,) = eddymail.json("ticket", "show", "1")["ticket"]["messages"]
    assert message["auth_status"] == "fail"
    assert eddymail.json("user", "list")["users"] == []


# --- mail that asks for no automatic answer ---------------------------------------------

LOOP_SIGNALS = {
    "x-loop": b"X-Loop: help@example.test\r\n",
    "x-auto-response-suppress": b"X-Auto-Response-Suppress: All\r\n",
    "null sender": b"Return-Path: <>\r\n",
}


@pytest.mark.parametrize("signal", LOOP_SIGNALS.values(), ids=LOOP_SIGNALS.keys())
def test_mail_asking_for_no_automatic_answer_gets_a_ticket_and_no_mail(eddymail, desk, inbox,
                                                                       signal):
    # None of these marks a message as an auto-reply, a bounce or list mail; each still says
    # "do not answer me automatically", and eddymail must not (RFC 3834, mail loops).
    quiet = signal + make_mail("Printer", sender="Bob <bob@other.example>")
    plain = make_mail("Printer too", sender="Carl <carl@other.example>")
    assert [o["status"] for o in inbox(quiet, plain)] == ["new_ticket", "new_ticket"]
    queued = eddymail.json("outbox", "list", "--all")["outbox"]
    assert queued and {tuple(item["recipients"]) for item in queued} == {("carl@other.example",)}


# --- floods -------------------------------------------------------------------------------


def test_a_thousand_forged_senders_get_at_most_the_daily_cap(eddymail, desk, tmp_path):
    eddymail("settings", "set", "auto-mail-per-day", "20")
    box = mailbox.mbox(str(tmp_path / "flood.mbox"))
    for number in range(1000):
        box.add(stamped(make_mail(f"Flood {number}", sender=f"victim{number}@victims.example",
                                  message_id=f"<flood{number}@evil.example>")))
    box.flush()
    outcomes = eddymail.json("ingest", "--channel", "support",
                             str(tmp_path / "flood.mbox"))["messages"]
    assert len(outcomes) == 1000 and {o["status"] for o in outcomes} == {"new_ticket"}
    queued = eddymail.json("outbox", "list", "--all")["outbox"]
    assert len(queued) == 20
    eddymail("outbox", "retry")
    received = settle(desk, 20)
    assert len(received) == 20
    assert len({m.rcpt_tos[0] for m in received}) == 20
    # The cap holds across runs: a later mail still sends nothing today.
    later = tmp_path / "later.eml"
    later.write_bytes(stamped(make_mail("One more", sender="late@victims.example")))
    eddymail("ingest", "--channel", "support", str(later))
    assert len(eddymail.json("outbox", "list", "--all")["outbox"]) == 20


def test_many_mails_from_one_address_cap_at_the_per_recipient_limit(eddymail, desk, tmp_path):
    eddymail("settings", "set", "auto-mail-per-recipient", "3")
    box = mailbox.mbox(str(tmp_path / "one.mbox"))
    for number in range(40):
        # The same victim in every spelling a forger might try.
        sender = ["anna@customer.example", "ANNA@Customer.Example",
                  "Anna <anna@CUSTOMER.example>"][number % 3]
        box.add(stamped(make_mail(f"Request {number}", sender=sender)))
    box.flush()
    eddymail("ingest", "--channel", "support", str(tmp_path / "one.mbox"))
    eddymail("outbox", "retry")
    received = settle(desk, 3)
    assert len(received) == 3
    assert {m.rcpt_tos[0].lower() for m in received} == {"anna@customer.example"}
