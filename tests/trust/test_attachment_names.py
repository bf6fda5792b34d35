"""Issue 11, class 9 (the names): padding cannot hide an attachment's real extension.

``invoice.pdf`` followed by hundreds of invisible or blank characters and ``.exe`` showed in
``ticket show`` as a PDF: the ``.exe`` fell off the line. Runs of such characters are now
counted ("[200 blank characters]") and the real extension is shown first, on its own.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.adversarial import hostile

PADDING = {
    "braille blank": "\u2800" * 200,
    "hangul filler": "\u3164" * 150,
    "no-break spaces": "\u00a0" * 120,
    "zero-width spaces": "\u200b" * 300,
    "bidi marks and spaces": "\u200e \u200f " * 80,
    "ideographic spaces": "\u3000" * 100,
    "variation selectors": "\ufe0f" * 90,
}


def rfc2231(name: str) -> str:
    return f"attachment; filename*=utf-8''{quote(name, safe='')}"


@pytest.fixture
def padded(eddymail, support, tmp_path) -> list[str]:
    """One ticket with one padded ``.exe`` per kind of padding; their names as sent."""
    names = [f"invoice-{index}.pdf{padding}.exe" for index, padding in enumerate(
        PADDING.values())]
    parts = [hostile.text_part("See attachments.")]
    parts += [hostile.attachment_part(rfc2231(name), b"MZ\x90\x00") for name in names]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    assert hostile.ingest(eddymail, inbox, hostile.mixed(*parts))[0]["status"] == "new_ticket"
    return names


def test_ticket_show_names_the_real_extension_first(eddymail, padded):
    lines = [line for line in eddymail("ticket", "show", "1").stdout.splitlines()
             if "[attachment" in line]
    assert len(lines) == len(PADDING)
    for line in lines:
        assert line.lstrip().split("] ", 1)[1].startswith(".exe: invoice-"), line
        assert "\u2800" not in line and "\u3164" not in line  # counted, not drawn


def test_the_attachment_list_and_json_carry_the_extension(eddymail, padded):
    items = eddymail.json("ticket", "attachments", "1")["attachments"]
    assert [item["extension"] for item in items] == [".exe"] * len(PADDING)
    braille = next(item for item in items if item["filename"].startswith("invoice-0"))
    # The stored name was cut to its 240 UTF-8 bytes (the extension kept): 74 of 200 left.
    assert braille["shown_name"] == "invoice-0.pdf[74 blank characters].exe"
    table = eddymail("ticket", "attachments", "1").stdout
    assert table.count(".exe") >= len(PADDING)
    shown = eddymail.json("ticket", "show", "1")["ticket"]["messages"][0]["attachments"]
    assert {item["extension"] for item in shown} == {".exe"}


def test_ordinary_names_read_as_before(eddymail, support, tmp_path):
    names = ["Отчёт за март.docx", "My report.pdf", "archive.tar.gz", "README"]
    parts = [hostile.text_part("Files.")]
    parts += [hostile.attachment_part(rfc2231(name), b"data") for name in names]
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    hostile.ingest(eddymail, inbox, hostile.mixed(*parts))
    items = eddymail.json("ticket", "attachments", "1")["attachments"]
    assert [(i["shown_name"], i["extension"]) for i in items] == [
        ("Отчёт за март.docx", ".docx"), ("My report.pdf", ".pdf"), ("archive.tar.gz", ".gz"),
        ("README", "")]
