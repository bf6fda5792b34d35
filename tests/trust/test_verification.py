"""Issue 11, class 7: no Authentication-Results from the trusted server is not a pass.

When a channel names the authserv-id of its provider, mail that does not carry that
provider's header was not checked by it (sent around it, straight to the mailbox's server,
or by a forger who hopes for exactly this): it is unverified, like mail that failed.
"""

from __future__ import annotations

import pytest

from tests.mailfactory import make_mail

AUTHSERV = "mx.trusted.example"

MISSING = {
    "no header at all": b"",
    "another provider's header": b"Authentication-Results: mx.other.example; dmarc=pass "
                                 b"header.from=customer.example\r\n",
    "a lookalike authserv-id": f"Authentication-Results: {AUTHSERV}.evil.example; dmarc=pass "
                               "header.from=customer.example\r\n".encode(),
    "our id as a prefix": f"Authentication-Results: x{AUTHSERV}; spf=pass "
                          "smtp.mailfrom=anna@customer.example\r\n".encode(),
    "a similar header name": f"X-Authentication-Results: {AUTHSERV}; dmarc=pass "
                             "header.from=customer.example\r\n".encode(),
}


@pytest.fixture
def trusting_channel(eddymail, support):
    support("help", "--email", "help@example.test", "--protocol", "none",
            "--smtp-host", "127.0.0.1", "--smtp-port", "9", "--smtp-security", "none",
            "--authserv-id", AUTHSERV)
    return "help"


def ingest(eddymail, channel, raw: bytes) -> dict:
    (outcome,) = eddymail.json("ingest", "--channel", channel, input=raw.decode())["messages"]
    return outcome


@pytest.mark.parametrize("header", MISSING.values(), ids=MISSING.keys())
def test_mail_without_the_trusted_header_is_unverified(eddymail, trusting_channel, header):
    checked = f"Authentication-Results: {AUTHSERV}; dmarc=pass " \
              "header.from=customer.example\r\n".encode()
    first = ingest(eddymail, trusting_channel,
                   checked + make_mail("Printer", message_id="<first@customer.example>"))
    assert first["status"] == "new_ticket"
    eddymail("ticket", "close", "1")
    queued = len(eddymail.json("outbox", "list")["outbox"])
    # The real requester's address, the tag and the In-Reply-To: only the header is missing.
    reply = ingest(eddymail, trusting_channel, header + make_mail(
        "Re: [#1] Printer", in_reply_to="<first@customer.example>",
        cc="carl@customer.example"))
    assert reply["status"] == "new_ticket" and reply["ticket_id"] == 2
    assert eddymail.json("ticket", "show", "1")["ticket"]["status"] == "closed"
    stranger = ingest(eddymail, trusting_channel,
                      header + make_mail("Hello", sender="New <new@elsewhere.example>"))
    assert stranger["status"] == "new_ticket"
    for number in (2, 3):
        (message,) = eddymail.json("ticket", "show", str(number))["ticket"]["messages"]
        assert message["auth_status"] == "missing"
        assert "NOT VERIFIED" in eddymail("ticket", "show", str(number)).stdout
    assert [u["email"] for u in eddymail.json("user", "list")["users"]] == [
        "anna@customer.example"]
    assert len(eddymail.json("outbox", "list")["outbox"]) == queued  # nothing more to send


def test_the_trusted_header_without_checks_and_a_channel_without_an_id_behave_as_before(
        eddymail, support, trusting_channel):
    none = ingest(eddymail, trusting_channel, f"Authentication-Results: {AUTHSERV.upper()}; "
                  "none\r\n".encode() + make_mail("Checked, nothing to say"))
    support("plain", "--email", "plain@example.test", "--protocol", "none")
    plain = ingest(eddymail, "plain", make_mail("No id configured", sender="b@other.example"))
    statuses = [eddymail.json("ticket", "show", str(outcome["ticket_id"]))["ticket"][
        "messages"][0]["auth_status"] for outcome in (none, plain)]
    assert statuses == ["none", None]
    assert sorted(u["email"] for u in eddymail.json("user", "list")["users"]) == [
        "anna@customer.example", "b@other.example"]
