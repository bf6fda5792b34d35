"""A message is parsed in one pass: after the one walk that builds the part tree, nothing
splits, re-checks, repairs, feed-parses or transfer-decodes the raw bytes again.

``parse_message`` runs the cheap limit scan and the header repair, splits the bytes, and
``parttree.build_tree`` walks them once (nested messages included). The readers after it
(bodies and charsets, classification, Authentication-Results, addresses, dates) must work
on the tree alone; each guard below fails the moment one of them goes back to the bytes.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from eddymail.mail.message import parse, parttree, stdlib_email
from eddymail.mail.message.parse import parse_message
from eddymail.mail.message.parselimits import Deadline

MAIL = Path(__file__).parent / "data" / "mail"

NESTED = (
    b"From: a@example.org\r\nSubject: outer\r\nAuthentication-Results: mx.example.org; "
    b"spf=pass smtp.mailfrom=example.org\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/html; charset=koi8-r\r\n\r\n<p>\xf0\xd2\xc9\xd7\xc5\xd4</p>\r\n"
    b"--b\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.encodebytes(b"From: b@example.org\r\nSubject: inner\r\n\r\ninner body\r\n")
    + b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: c@example.org\r\nSubject: hdr\r\n"
    b"\r\n--b--\r\n"
)


def samples() -> list[tuple[str, bytes]]:
    return [(path.name, path.read_bytes()) for path in sorted(MAIL.glob("*.eml"))] + [
        ("nested", NESTED)]


@pytest.fixture
def walked(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Arms a guard on every way back to the bytes; the list says the walk has ended."""
    done: list[bool] = []
    real_build = parse.build_tree

    def build(*args: Any, **kwargs: Any) -> parttree.Part:
        tree = real_build(*args, **kwargs)
        done.append(True)
        return tree

    def guarded(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def guard(*args: Any, **kwargs: Any) -> Any:
            assert not done, f"{name} ran after the part tree was built"
            return real(*args, **kwargs)
        return guard

    monkeypatch.setattr(parse, "build_tree", build)
    for module, name in [(parse, "split"), (parttree, "split"), (parse, "precheck"),
                         (parttree, "precheck"), (parse, "repair_header_block"),
                         (stdlib_email, "feed_parse"), (parttree, "decode_transfer")]:
        monkeypatch.setattr(module, name, guarded(f"{module.__name__}.{name}",
                                                  getattr(module, name)))
    return done


@pytest.mark.parametrize(("name", "raw"), samples(), ids=[name for name, _ in samples()])
def test_nothing_goes_back_to_the_raw_bytes_after_the_walk(walked, name, raw):
    parsed = parse_message(raw)
    assert walked == [True]  # exactly one walk, however deep the message
    assert parsed.subject is not None


def test_the_guard_is_armed_once_the_walk_is_done(walked):
    parsed = parse_message(NESTED)
    assert parsed.subject == "outer"
    assert "Привет" in parsed.body_text and "inner body" in parsed.body_text
    assert parsed.authentication_results  # read from the tree's header index
    with pytest.raises(AssertionError, match="after the part tree was built"):
        parttree.split(b"Subject: again\r\n\r\nx", Deadline(5))
