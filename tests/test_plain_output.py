"""Tables and fields written to a pipe or a file without rich's console (issue 14).

``Output.table`` and ``Output.fields`` write to a pipe what rich would write there, byte for
byte, without importing rich's console; these tests draw the same tables both ways (rich
through a console on a buffer) and compare, for wide (CJK), combining, emoji and hostile
text, narrow and wide screens. Then the commands themselves: ``ticket list`` and
``ticket show`` into a pipe are aligned and sanitised and load no rich console.
"""

from __future__ import annotations

import io
import random
import sys
from importlib.metadata import version

import pytest
from rich.cells import cell_len

from eddymail.cli.output import Output, Styled, _console
from tests.test_startup_imports import heavy_in, loaded_modules

# Pieces of cell text: plain, wide (CJK, fullwidth), combining marks, emoji, a long word,
# and characters that must be spelled out (controls, bidi overrides, zero-width).
PIECES = ("Invoice", "wrong", "日本語の請求書", "ＦＵＬＬ", "e\u0301te\u0301", "Ма\u0306рия",
          "🖨️ jam", "x" * 40, "a\x1b[31mred", "\u202egnp.exe", "zero\u200bwidth", "tab\there",
          "new\nline", "ǅ", "ﾊﾝｶｸ", "   spaced  ", "")


def random_text(rng: random.Random) -> str:
    return " ".join(rng.choice(PIECES) for _ in range(rng.randint(1, 4)))


def random_value(rng: random.Random) -> object:
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randint(1, 10**rng.randint(1, 7))
    if kind == 1:
        return None
    if kind == 2:  # a subject with a snippet under it, as ``ticket list --search`` makes
        return Styled(((random_text(rng), ""), ("  #vip", "dim"), ("\n", ""),
                       (random_text(rng), "dim"), (rng.choice(PIECES), "bold")))
    return random_text(rng)


def drawn(columns: list[str], rows: list[list[object]], width: int, *, rich: bool,
          **options: object) -> tuple[str, bool]:
    """What ``Output.table`` writes: through rich's console, or as it goes to a pipe; and
    whether it was written without a rich console."""
    buffer = io.StringIO()
    out = Output()
    if rich:
        out._stdout = _console(buffer)  # a console of ours on another stream: rich draws
        out._stdout.width = width
        out.table(columns, rows, **options)  # type: ignore[arg-type]
    else:
        saved = sys.stdout
        sys.stdout = buffer
        try:
            out.table(columns, rows, **options)  # type: ignore[arg-type]
        finally:
            sys.stdout = saved
    return buffer.getvalue(), out._stdout is None


# Older rich (12.3, the floor, to 14) lays out a full-width table's columns a little
# differently; the piped form is the one rich 15 (pinned in constraints.txt) writes.
SAME_AS_RICH = pytest.mark.skipif(int(version("rich").split(".")[0]) < 15,
                                  reason="rich before 15 lays out columns differently")


@SAME_AS_RICH
def test_a_piped_table_is_what_rich_writes(monkeypatch):
    plain_ones = 0
    for seed in range(300):
        rng = random.Random(seed)
        width = rng.choice((20, 40, 60, 80, 120, 200))
        monkeypatch.setenv("COLUMNS", str(width))
        columns = ["#", "Status", "Subject", "Requester", "Note"][:rng.randint(2, 5)]
        rows = [[random_value(rng) for _ in columns] for _ in range(rng.randint(1, 6))]
        grow = {"Subject": 3, "Requester": 2} if rng.random() < 0.7 else None
        piped, without_rich = drawn(columns, rows, width, rich=False, grow=grow)
        assert piped == drawn(columns, rows, width, rich=True, grow=grow)[0], seed
        # (A table too wide even after cutting, at 20 columns, is left to rich.)
        plain_ones += without_rich
    assert plain_ones > 250


def test_the_parity_check_sees_a_difference(monkeypatch):
    # The comparison above can fail: a title is drawn (centred) by rich only.
    monkeypatch.setenv("COLUMNS", "80")
    rows: list[list[object]] = [[1, "open"]]
    assert drawn(["#", "Status"], rows, 80, rich=True, title="Tickets")[0] != drawn(
        ["#", "Status"], rows, 80, rich=True)[0]


def test_wide_and_combining_characters_line_up(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    rows: list[list[object]] = [[1, "請求書が二重に届きました", "山田 <yamada@example.jp>"],
                                [22, "Cafe\u0301 au lait", "Zoe\u0308 <zoe@example.com>"],
                                [333, "plain", "x@example.com"]]
    text, without_rich = drawn(["#", "Subject", "Requester"], rows, 100, rich=False)
    assert without_rich
    lines = text.splitlines()
    # Every line takes the same number of terminal cells, and the third column starts in
    # the same cell on every row.
    assert len({cell_len(line) for line in lines}) == 1
    starts = {cell_len(line[:line.index(marker)])
              for line, marker in zip(lines[2:], ("山田", "Zoe", "x@"), strict=True)}
    assert len(starts) == 1
    assert "請求書が二重に届きました" in lines[2]  # whole: the width counts cells, not letters
    assert "Cafe\u0301 au lait" in lines[3]


@SAME_AS_RICH
def test_a_too_long_wide_subject_is_cut_on_a_cell_boundary(monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")
    rows: list[list[object]] = [[1, "請求書が二重に届きました請求書が二重に届きました"]]
    lines = drawn(["#", "Subject"], rows, 30, rich=False)[0].splitlines()
    assert all(cell_len(line) <= 30 for line in lines)
    assert lines[2].rstrip().endswith("…")
    assert lines[2] == drawn(["#", "Subject"], rows, 30, rich=True)[0].splitlines()[2]


@SAME_AS_RICH
def test_piped_fields_are_what_rich_writes(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    pairs = [("Subject", "日本語の請求書 e\u0301 \u202eexe"), ("Status", "open"),
             ("Requester", "a\x1b]52;c;bad\x07@example.com"), ("Tags", None)]
    buffer = io.StringIO()
    out = Output()
    out._stdout = _console(buffer)
    out.fields(pairs, title="Ticket #7")
    saved, sys.stdout = sys.stdout, io.StringIO()
    try:
        plain_out = Output()
        plain_out.fields(pairs, title="Ticket #7")
        plain = sys.stdout.getvalue()
        assert plain_out._stdout is None
    finally:
        sys.stdout = saved
    assert plain == buffer.getvalue()
    assert "\\u202e" in plain and "\\x1b]52" in plain and "\x1b" not in plain


def test_a_piped_ticket_list_is_sanitised_and_aligned(eddymail, support, tmp_path, monkeypatch):
    from tests.test_screens import deliver

    monkeypatch.setenv("COLUMNS", "160")
    hostile = "Invoice \x1b[2J\x1b]0;owned\x07 \u202egnp.exe \u200bhidden"
    deliver(eddymail, tmp_path, hostile, sender='"Evil \u202eName" <evil@x.example>')
    deliver(eddymail, tmp_path, "請求書が二重に届きました", sender="山田 <yamada@example.jp>")
    deliver(eddymail, tmp_path, "Cafe\u0301 crème", sender="Zoe\u0308 <zoe@example.com>")
    output = eddymail("ticket", "list").stdout
    assert "\x1b" not in output and "\u202e" not in output and "\u200b" not in output
    assert "\\x1b[2J" in output and "\\u202egnp.exe" in output and "\\u200bhidden" in output
    lines = output.splitlines()
    assert len({cell_len(line) for line in lines}) == 1  # wide characters counted as two
    requester = {cell_len(line[:line.index(address)]) for line, address in zip(
        lines[2:], ("zoe@", "yamada@", "evil@"), strict=True)}
    assert len(requester) == 1


def test_a_piped_ticket_show_spells_out_hostile_fields(eddymail, support, tmp_path):
    from tests.test_screens import deliver

    number = deliver(eddymail, tmp_path, "Refund \u202eexe.pdf \x9b31m",
                     sender='"Bob \x1b[5m" <bob@x.example>')
    output = eddymail("ticket", "show", str(number)).stdout
    assert "\x1b" not in output and "\u202e" not in output and "\x9b" not in output
    assert "Refund \\u202eexe.pdf \\x9b31m" in output


def test_ticket_list_and_show_into_a_pipe_load_no_rich_console(eddymail, support, tmp_path):
    from tests.test_screens import deliver

    number = deliver(eddymail, tmp_path, "The printer is jammed")
    for args in (("ticket", "list"), ("ticket", "show", str(number)),
                 ("ticket", "list", "--search", "printer")):
        assert heavy_in(loaded_modules(tmp_path, *args)) == [], args


def test_on_a_terminal_ticket_list_still_draws_with_rich(eddymail, support, tmp_path,
                                                         monkeypatch):
    # The check above can fail: with styles (a terminal, here TTY_COMPATIBLE=1) rich draws.
    from tests.test_screens import deliver

    deliver(eddymail, tmp_path, "The printer is jammed")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert "rich.console" in loaded_modules(tmp_path, "ticket", "list")


@pytest.mark.parametrize("body", [
    "Line\twith a tab \u202eevil \x1b[2J\nsecond line\n",  # a tab: rich expands it
    "No tab \u202eevil \x1b[2J \u200bzero\nsecond line\n",  # the one-write path
    "Пишу \x9b31m по-русски \u2066isolate\u2069\n",  # non-ASCII around the escapes
])
def test_every_mail_part_of_a_piped_thread_is_spelled_out(eddymail, support, tmp_path, body):
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = '"Eve \x1b]0;title\x07 \u202eName" <eve@x.example>'
    message["To"] = "help@example.test"
    message["Cc"] = "carol@x.example"
    message["Reply-To"] = "other@x.example"
    message["Subject"] = "Hostile thread"
    message["Message-ID"] = f"<hostile-{len(body)}@x.example>"
    message.set_content(body)
    message.add_attachment(b"MZ", maintype="application", subtype="octet-stream",
                           filename="invoice\u202efdp.exe")
    path = tmp_path / "hostile.eml"
    path.write_bytes(message.as_bytes())
    number = eddymail.json("ingest", "--department", "Support", str(path))["messages"][0][
        "ticket_id"]
    output = eddymail("ticket", "show", str(number)).stdout
    for raw in ("\x1b", "\x07", "\x9b", "\u202e", "\u200b", "\u2066", "\t"):
        assert raw not in output, repr(raw)
    header = next(line for line in output.splitlines() if line.startswith("── "))
    assert "Eve \\x1b]0;title\\x07 \\u202eName" in header and header.endswith(" UTC")
    assert "   Cc: carol@x.example" in output
    assert "Reply-To differs from From: other@x.example" in output
    # (a stored file name is already made safe: the override becomes "_")
    assert "[attachment 1] .exe: invoice_fdp.exe (application/octet-stream, 2 bytes)" in output
    shown_body = body.replace("\x1b", "\\x1b").replace("\u202e", "\\u202e").replace(
        "\u200b", "\\u200b").replace("\x9b", "\\x9b").replace("\u2066", "\\u2066").replace(
        "\u2069", "\\u2069").replace("\t", "   ").rstrip()
    assert shown_body.split("\n")[-1] in output
    order = [output.index(part) for part in (header, "Cc:", shown_body.split("\n")[-1],
                                              "[attachment")]
    assert order == sorted(order)
