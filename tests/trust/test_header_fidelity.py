"""Issue 11, parsing fidelity: header blocks and address lists broken as mail in the wild
breaks them, read the way a careful reader would.

- the obsolete ``Name :`` form (white space before the colon);
- a garbage line among the headers (skipped when well-known headers follow it; a body line
  right after the headers, with the blank line missing, stays body);
- domainless addresses (``<moderator>``) listed but never taken for a mailbox, and
  group-only lists (``undisclosed-recipients:;``);
- a multipart boundary parameter folded across lines, inside its quotes or around them.
"""

from __future__ import annotations

import pytest

from eddymail.mail.message.parse import parse_message

DATE = "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n"


def parse(text: str):
    return parse_message(text.encode("utf-8"))


@pytest.mark.parametrize("head", [
    "Subject : Printer\r\nFrom : Anna <anna@customer.example>\r\nTo : help@example.test\r\n",
    "Subject\t: Printer\r\nFrom: Anna <anna@customer.example>\r\nTo: help@example.test\r\n",
    "From: Anna <anna@customer.example>\r\nTo:  help@example.test\r\nSubject    : Printer\r\n",
    "From   :   Anna <anna@customer.example>\r\nSubject: Printer\r\nTo: help@example.test\r\n",
])
def test_the_obsolete_name_space_colon_form_is_read(head):
    parsed = parse(head + DATE + "\r\nThe body.\r\n")
    assert parsed.subject == "Printer"
    assert parsed.from_ is not None and parsed.from_.address == "anna@customer.example"
    assert [a.address for a in parsed.to] == ["help@example.test"]
    assert parsed.body_text.strip() == "The body."


@pytest.mark.parametrize("garbage", [
    "this line is no header",
    ">From someone on a Tuesday",
    "==========",
    "Ã©Ã©Ã© broken bytes",
    "two garbage\r\nlines in a row",
])
def test_a_garbage_line_among_the_headers_is_skipped(garbage):
    parsed = parse("From: Anna <anna@customer.example>\r\nSubject: Printer\r\n"
                   f"{garbage}\r\nTo: help@example.test\r\n{DATE}"
                   "Content-Type: text/plain; charset=utf-8\r\nX-Mailer: Old\r\n\r\n"
                   "The body.\r\n")
    assert parsed.subject == "Printer"
    assert [a.address for a in parsed.to] == ["help@example.test"]
    assert parsed.date is not None
    assert parsed.body_text.strip() == "The body."


def test_a_body_that_follows_the_headers_without_a_blank_line_stays_body():
    parsed = parse("From: Anna <anna@customer.example>\r\nSubject: Printer\r\n"
                   "Hello there,\r\nNote: it is on fire.\r\n\r\nAnna\r\n")
    assert parsed.subject == "Printer"
    assert parsed.body_text.startswith("Hello there,\nNote: it is on fire.")


@pytest.mark.parametrize(("header", "expected"), [
    ("To: <moderator>", ["moderator"]),
    ("To: Moderator <moderator>, help@example.test", ["moderator", "help@example.test"]),
    ("To: postmaster", ["postmaster"]),
    ("To: undisclosed-recipients:;", []),
    ("To: undisclosed-recipients:;, help@example.test", ["help@example.test"]),
    ("To: Team: a@x.example, b@x.example;", ["a@x.example", "b@x.example"]),
    ("To: :;", []),
])
def test_domainless_and_group_only_recipients(header, expected):
    parsed = parse(f"From: anna@customer.example\r\n{header}\r\nSubject: s\r\n{DATE}\r\nb\r\n")
    assert [a.address for a in parsed.to] == expected
    assert parsed.sender_valid


@pytest.mark.parametrize("sender", ["<moderator>", "Mailing List <list-owner>", "MAILER-DAEMON",
                                    "undisclosed-recipients:;"])
def test_a_domainless_or_empty_sender_is_shown_but_identifies_nobody(eddymail, support, sender):
    raw = (f"From: {sender}\r\nTo: help@example.test\r\nSubject: s\r\n{DATE}\r\nbody\r\n")
    (outcome,) = eddymail.json("ingest", "--department", "Support", input=raw)["messages"]
    assert outcome["status"] in ("new_ticket", "recorded")
    assert eddymail.json("user", "list")["users"] == []
    assert eddymail.json("outbox", "list")["outbox"] == []


PARTS = ("\r\n--{b}\r\nContent-Type: text/plain\r\n\r\npart one\r\n--{b}\r\n"
         "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=f.pdf\r\n"
         "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--{b}--\r\n")


@pytest.mark.parametrize(("content_type", "boundary"), [
    ('multipart/mixed;\r\n boundary=\r\n "abc123"', "abc123"),
    ('multipart/mixed;\r\n\tboundary="abc123"', "abc123"),
    ("multipart/mixed; boundary\r\n =abc123", "abc123"),
    ('multipart/mixed;\r\n boundary*0="abc";\r\n boundary*1="123"', "abc123"),
    ('multipart/mixed; boundary="abc\r\n 123"', "abc123"),
    ('multipart/mixed;\r\n boundary="----=_Part_0_\r\n\t12345.678"', "----=_Part_0_12345.678"),
])
def test_a_folded_boundary_parameter(content_type, boundary):
    parsed = parse("From: anna@customer.example\r\nSubject: s\r\nMIME-Version: 1.0\r\n"
                   f"Content-Type: {content_type}\r\n" + PARTS.format(b=boundary))
    assert parsed.body_text.strip() == "part one"
    assert [a.filename for a in parsed.attachments] == ["f.pdf"]
