"""Issue 11, class 6: one mailbox, however it is spelt, is one recipient, one user, one
participant.

A domain in Unicode and in Punycode, upper and lower case, a local part in NFC and NFD:
each spelling used to count as a new recipient (a fresh per-recipient cap per spelling), a
new user and a stranger to the ticket. See ``eddymail.mail.message.addresskeys`` for the
rules.
"""

from __future__ import annotations

import pytest

from eddymail.mail.message.addresskeys import address_key
from tests.trust.conftest import raw_mail

SPELLINGS = {
    "cyrillic domain": ["anna@пример.рф", "anna@xn--e1afmkfd.xn--p1ai", "Anna@ПРИМЕР.РФ",
                        "ANNA@XN--E1AFMKFD.XN--P1AI", "anna@Xn--E1afmkfd.xn--P1ai"],
    "german domain": ["jo@bücher.example", "jo@xn--bcher-kva.example", "JO@BÜCHER.EXAMPLE",
                      "jo@bu\u0308cher.example"],
    "ascii": ["bob@other.example", "BOB@Other.Example", "Bob@OTHER.EXAMPLE."],
}


@pytest.mark.parametrize("spellings", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_every_spelling_has_one_key(spellings):
    assert len({address_key(spelling) for spelling in spellings}) == 1


def test_different_mailboxes_keep_different_keys():
    different = ["a@straße.example", "a@strasse.example", "a.b@example.com", "ab@example.com",
                 "a+tag@example.com", "a@example.com", '"a b"@example.com', "a@[192.0.2.1]"]
    assert len({address_key(address) for address in different}) == len(different)


def ingest(eddymail, channel, raw: bytes) -> dict:
    (outcome,) = eddymail.json("ingest", "--channel", channel, input=raw.decode())["messages"]
    return outcome


@pytest.mark.parametrize("name", ["cyrillic domain", "german domain"])
def test_the_per_recipient_cap_counts_one_mailbox(eddymail, sending_channel, name):
    eddymail("settings", "set", "auto-mail-per-recipient", "2")
    spellings = SPELLINGS[name]
    for number in range(8):
        ingest(eddymail, sending_channel,
               raw_mail(spellings[number % len(spellings)], f"Request {number}"))
    assert len(eddymail.json("outbox", "list")["outbox"]) == 2
    assert len(eddymail.json("user", "list")["users"]) == 1
    assert len(eddymail.json("ticket", "list", "--limit", "20")["tickets"]) == 8


def test_a_reply_in_another_spelling_joins_its_ticket(eddymail, sending_channel):
    first = ingest(eddymail, sending_channel, raw_mail("Anna <anna@пример.рф>", "Printer"))
    assert first["ticket_id"] == 1
    for number, spelling in enumerate(["ANNA@XN--E1AFMKFD.XN--P1AI", "Anna@ПРИМЕР.РФ"]):
        reply = ingest(eddymail, sending_channel,
                       raw_mail(spelling, f"Re: [#1] Printer ({number})"))
        assert (reply["status"], reply["ticket_id"]) == ("followup", 1)
    assert eddymail.json("ticket", "list", "--requester", "anna@XN--E1AFMKFD.xn--p1ai")[
        "tickets"][0]["id"] == 1


def test_our_own_address_in_punycode_is_still_ours(eddymail, support):
    support("shop", "--email", "help@магазин.example", "--protocol", "none",
            "--smtp-host", "127.0.0.1", "--smtp-port", "9", "--smtp-security", "none")
    own = ingest(eddymail, "shop", raw_mail("Help <HELP@XN--80AAIRFTM.example>", "Loop"))
    assert own["status"] == "recorded"
    assert eddymail.json("outbox", "list")["outbox"] == []
