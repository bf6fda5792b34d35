"""Issue 11, class 8: a character in an HTML attribute must not make the converter raise, and
the fallback used when it cannot build a tree is as safe as the tree: hidden text stays
hidden, link targets stay visible.

The fallback is reached in the real pipeline by nesting deeper than libxml2 reads (300
levels), and checked against the tree converter on the same documents.
"""

from __future__ import annotations

import pytest

from eddymail.mail.message.htmlfallback import strip_tags
from eddymail.mail.message.htmltext import html_to_text
from tests.adversarial import hostile

SECRET = "SECRET-TEXT"
LINK = '<a href="http://evil.example/login">www.bank.example</a>'
HIDING = {
    "display none": f'<div style="display:none">{SECRET}</div>',
    "hidden attribute": f"<div hidden>{SECRET}</div>",
    "visibility": f'<span style="color:red; visibility : hidden">{SECRET}</span>',
    "zero font": f'<p style="font-size:0px">{SECRET}</p>',
    "class rule": f'<style>.pre{{display:none}}</style><span class="pre">{SECRET}</span>',
    "id rule": f'<style>#x {{ mso-hide: all }}</style><div id="x">{SECRET}</div>',
    "script": f"<script>var a = '{SECRET}';</script>",
    "never closed": f'<div style="display:none">{SECRET}<p>still hidden',
    "nested inside": f'<div hidden><table><tr><td>{SECRET}</td></tr></table></div>',
}
ATTRIBUTE_CHARACTERS = ["\ufffe", "\uffff", "\x01", "\x1b", "\x7f", "\x85", "\u202e", "\x0c"]


def mail_with_html(html: str) -> bytes:
    return hostile.mixed(hostile.text_part(html, "text/html; charset=utf-8"))


def body_of(eddymail, tmp_path, html: str) -> str:
    inbox = tmp_path / "inbox"
    inbox.mkdir(exist_ok=True)
    (outcome,) = hostile.ingest(eddymail, inbox, mail_with_html(html))
    assert outcome["status"] == "new_ticket", outcome
    ticket = eddymail.json("ticket", "show", str(outcome["ticket_id"]))["ticket"]
    return ticket["messages"][0]["body_text"]


@pytest.mark.parametrize("character", ATTRIBUTE_CHARACTERS, ids=[
    f"U+{ord(c):04X}" for c in ATTRIBUTE_CHARACTERS])
def test_a_character_in_an_attribute_leaves_the_tree_converter_working(
        eddymail, support, tmp_path, character):
    html = (f'<p>Visible</p>{HIDING["display none"]}'
            f'<a href="http://evil.example/{character}login" title="t{character}">'
            f'www.bank.example</a><img alt="logo{character}x" src="cid:1">')
    body = body_of(eddymail, tmp_path, html)
    assert "Visible" in body and SECRET not in body
    assert "<http://evil.example/" in body, body


@pytest.mark.parametrize("hiding", HIDING.values(), ids=HIDING.keys())
def test_the_fallback_hides_what_the_tree_hides_and_shows_link_targets(
        eddymail, support, tmp_path, hiding):
    deep = "<div>" * 300 + f"<p>Visible</p>{LINK}{hiding}" + "</div>" * 300
    body = body_of(eddymail, tmp_path, deep)  # libxml2 reads 256 levels: the fallback
    assert "Visible" in body and SECRET not in body, body
    assert "www.bank.example <http://evil.example/login>" in body, body


@pytest.mark.parametrize("hiding", HIDING.values(), ids=HIDING.keys())
def test_fallback_and_tree_agree(hiding):
    document = f"<p>Visible</p>{LINK}{hiding}<p>After</p>"
    for text in (strip_tags(document), html_to_text(document)):
        assert SECRET not in text and "Visible" in text
        assert "<http://evil.example/login>" in text
    if "still hidden" not in hiding:  # an unclosed hidden element hides all after it
        assert "After" in strip_tags(document)


def test_the_fallback_keeps_honest_links_short_and_alt_texts():
    text = strip_tags('<a href="https://ok.example/">https://ok.example/</a> '
                      '<a href="#top">top</a> <img alt="Company logo" src="x">'
                      '<a href="mailto:help@example.test">help@example.test</a>')
    assert text == "https://ok.example/ top [Company logo]help@example.test"
