"""What eddymail relies on in the standard library's ``email`` package, pinned.

``eddymail.mail.message.stdlib_email`` is the one adapter to the feed parser. These tests fail
when a Python release changes a behaviour it relies on, pointing at the primitive first and
then at what the adapter makes of it. A last test keeps private attributes of standard
library objects out of the whole message package.
"""

from __future__ import annotations

import ast
import base64
from email import policy as email_policy
from email.feedparser import BytesFeedParser
from email.message import Message
from pathlib import Path

import pytest

from eddymail.mail.message import stdlib_email
from eddymail.mail.message.parselimits import Deadline
from eddymail.mail.message.rawparts import RawPart, first_field, serialize

PACKAGE = Path(__file__).parents[1] / "eddymail" / "mail" / "message"
EIGHT_BIT = b"caf\xc3\xa9 \xff\xfe \x80\r\nline two\r\n\x00end"
# Bodies as sent, under transfer encodings the feed parser would otherwise undo its own way.
BODIES = {
    "8bit": EIGHT_BIT,
    "base64": base64.encodebytes(EIGHT_BIT).replace(b"\n", b"\r\n") + b"**junk**",
    "quoted-printable": b"caf=C3=A9 =\r\n\xff soft break=",
    "x-uuencode": b"begin 644 x\r\nM86)C\r\nend",
    "x-unheard-of": EIGHT_BIT,
}


def feed(raw: bytes) -> Message:
    parser = BytesFeedParser(policy=email_policy.compat32)
    parser.feed(raw)
    return parser.close()


def parse(raw: bytes) -> RawPart:
    return stdlib_email.feed_parse(raw, Deadline(60))


def leaf(encoding: str, body: bytes) -> bytes:
    return (b"Subject: caf\xc3\xa9\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: " + encoding.encode() + b"\r\n\r\n" + body)


# --- the primitives -------------------------------------------------------------------------


def test_the_feed_parser_and_a_message_default_to_compat32():
    """Documented defaults: the adapter relies on them instead of importing ``email.policy``
    (which loads the header registry; see the adapter's comment)."""
    assert BytesFeedParser().policy is email_policy.compat32
    assert Message().policy is email_policy.compat32


@pytest.mark.parametrize("encoding", BODIES)
def test_get_payload_decode_without_transfer_encoding_gives_the_bytes_as_received(encoding):
    """Documented: with no Content-Transfer-Encoding header the payload comes back as-is,
    as bytes. (Without ``decode`` it would be decoded by the charset, lossily.)"""
    message = feed(leaf(encoding, BODIES[encoding]))
    del message["content-transfer-encoding"]
    assert message.get_payload(decode=True) == BODIES[encoding]


def test_raw_items_keep_values_as_received():
    message = feed(b"Subject: caf\xc3\xa9\r\n  folded\t \r\nX-Empty:\r\nTo:  a@b\r\n\r\nx")
    assert [(name, value.encode("utf-8", "surrogateescape"))
            for name, value in message.raw_items()] == [
        ("Subject", b"caf\xc3\xa9\r\n  folded\t "), ("X-Empty", b""), ("To", b"a@b")]


def test_multipart_payload_preamble_epilogue_and_defects_are_public():
    message = feed(b"Content-Type: multipart/mixed; boundary=b\r\n\r\nbefore\r\n--b\r\n\r\n"
                   b"one\r\n--b\r\n\r\ntwo\r\n")
    assert message.is_multipart()
    assert [part.get_payload() for part in message.get_payload()] == ["one", "two"]
    assert message.preamble == "before"
    assert [type(defect).__name__ for defect in message.defects] == [
        "CloseBoundaryNotFoundDefect"]


# --- what the adapter makes of them ---------------------------------------------------------


@pytest.mark.parametrize("encoding", BODIES)
def test_a_leaf_keeps_every_byte_whatever_its_transfer_encoding(encoding):
    part = parse(leaf(encoding, BODIES[encoding]))
    assert part.payload == BODIES[encoding]
    assert part.fields[0] == ("Subject", b"caf\xc3\xa9")
    assert first_field(part.fields, "content-transfer-encoding") == encoding.encode()


def test_a_multipart_keeps_its_boundary_preamble_epilogue_and_defects():
    raw = (b"Content-Type: multipart/digest; boundary=\"b b\"\r\n\r\npre\xff\r\n--b b\r\n\r\n"
           b"Subject: first\r\n\r\nbody\r\n--b b\r\nContent-Type: text/plain\r\n\r\n\xe9\r\n"
           b"--b b--\r\nepi\xfe")
    part = parse(raw)
    assert (part.boundary, part.preamble, part.epilogue) == (b"b b", b"pre\xff", b"epi\xfe")
    first, second = part.payload
    assert first.default_type == "message/rfc822"
    assert first.payload[0].fields == (("Subject", b"first"),)
    assert first.payload[0].payload == b"body"
    assert second.payload == b"\xe9"
    assert serialize(part, b"\r\n") == raw
    broken = parse(b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nbody\r\n")
    assert broken.payload == b"--x\r\n\r\nbody\r\n"
    assert broken.defects == ("NoBoundaryInMultipartDefect", "MultipartInvariantViolationDefect")


def test_delivery_status_blocks_are_parts_of_fields():
    part = parse(b"Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n\r\n"
                 b"Final-Recipient: rfc822; a@b\r\nAction: failed\r\n")
    assert [block.fields for block in part.payload] == [
        (("Reporting-MTA", b"dns; mx"),),
        (("Final-Recipient", b"rfc822; a@b"), ("Action", b"failed"))]


@pytest.mark.parametrize("value, default, expected", [
    (None, "text/plain", ("text/plain", None)),
    (None, "message/rfc822", ("message/rfc822", None)),
    (b"TEXT/HTML; charset=x", "text/plain", ("text/html", None)),
    (b"garbage", "message/rfc822", ("text/plain", None)),
    (b'multipart/Mixed; boundary="a b  "', "text/plain", ("multipart/mixed", "a b")),
    (b"multipart/mixed; boundary*0=ab; boundary*1=cd", "text/plain", ("multipart/mixed", "abcd")),
    (b"multipart/mixed", "text/plain", ("multipart/mixed", None)),
    (b"multipart/mixed; boundary=\xe9", "text/plain", ("multipart/mixed", "\ufffd")),
])
def test_content_type_and_boundary_as_the_feed_parser_reads_them(value, default, expected):
    assert stdlib_email.content_type_and_boundary(value, default) == expected


# --- no private attributes ------------------------------------------------------------------


def private_accesses(source: str) -> list[str]:
    """``obj._name`` and ``getattr(obj, "_name")`` where ``obj`` is not ``self``/``cls``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.append(f"line {node.lineno}: .{node.attr}")
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr") and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and str(node.args[1].value).startswith("_")):
            found.append(f"line {node.lineno}: {node.func.id}(..., {node.args[1].value!r})")
    return found


def test_the_message_package_uses_no_private_attributes():
    assert private_accesses("x._payload = y._cur\ngetattr(i, '_is_text_encoding')") == [
        "line 1: ._payload", "line 1: ._cur", "line 2: getattr(..., '_is_text_encoding')"]
    offenders = {path.name: private_accesses(path.read_text())
                 for path in sorted(PACKAGE.glob("*.py"))}
    assert {name: found for name, found in offenders.items() if found} == {}
