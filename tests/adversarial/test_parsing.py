"""Hostile mail against the parser: bombs, lying charsets, broken MIME and hostile HTML.

Every message goes through the real ``eddymail ingest`` into a real SQLite file; what must
hold is that a bomb is quarantined with its bytes and the run goes on in bounded time, that
garbage becomes readable text while the stored raw bytes stay exactly as received, and that
HTML is turned into text without a single network request.
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator

import pytest

from eddymail.errors import MessageParseError
from eddymail.mail.message import body, parselimits
from eddymail.mail.message.parse import ParseLimits, parse_message
from tests.adversarial import hostile
from tests.mailfactory import make_mail
from tests.workcount import FakeClock, work_done

# Work is counted, never timed. Parsing a crafted header costs 8 to 18 steps (lines run,
# calls made) per byte of it; a parser gone quadratic would spend this budget long before
# it finished.
STEPS_PER_HEADER_BYTE = 60


def only_ticket(eddymail) -> dict:
    """``ticket show --json`` of the one ticket the test made."""
    (ticket,) = eddymail.json("ticket", "list", "--status", "all")["tickets"]
    return eddymail.json("ticket", "show", str(ticket["id"]))["ticket"]


def assert_raw_kept(database_path, raw: bytes) -> None:
    """The database keeps exactly the bytes that were received."""
    assert raw in hostile.stored_raw_messages(database_path).values()


# --- resources ------------------------------------------------------------------------------


def _param_bomb() -> bytes:
    return hostile.raw_mail(content_type="multipart/mixed; " + 'a=";' * 50_000 + ' boundary="b"',
                            body=b"--b\r\n\r\nx\r\n--b--\r\n")


BOMBS = {
    # name: (builder, words the quarantine reason must contain)
    "nesting_1000_multiparts": (hostile.nesting_bomb, "levels deep"),
    "20000_tiny_parts": (hostile.part_count_bomb, "MIME parts"),
    "2mb_header": (hostile.huge_header, "header block is larger"),
    "from_200k_commas": (lambda: hostile.with_from(hostile.recursive_from_headers()["commas"]),
                         "From header is"),
    "from_unclosed_comments": (
        lambda: hostile.with_from(hostile.recursive_from_headers()["unclosed_comments"]),
        "From header is"),
    "from_40000_encoded_words": (
        lambda: hostile.with_from(hostile.recursive_from_headers()["encoded_words"]),
        "From header is"),
    "content_type_50000_params": (_param_bomb, "parameters"),
}


@pytest.mark.parametrize("bomb", BOMBS)
def test_a_bomb_is_quarantined_with_its_bytes_and_the_run_goes_on(
        bomb, eddymail, support, tmp_path, database_path):
    build, reason = BOMBS[bomb]
    raw = build()
    good = make_mail("After the bomb")
    # The reason names the limit that refused the bomb: not the parse deadline, not luck.
    outcomes = hostile.ingest(eddymail, tmp_path, raw, good)
    assert [outcome["status"] for outcome in outcomes] == ["quarantined", "new_ticket"]
    (entry,) = eddymail.json("mail", "list", "--quarantined")["messages"]
    assert reason in entry["error"]
    assert hostile.stored_raw_messages(database_path)[entry["id"]] == raw
    (ticket,) = eddymail.json("ticket", "list")["tickets"]
    assert ticket["subject"] == "After the bomb"


CRAFTED_FROM = {
    # Each just under the header-field limit: parsed in linear time. (header, valid sender)
    "20000_nested_comments": ("(" * 20_000 + "x" + ")" * 20_000 + " <a@evil.example>",
                              "a@evil.example"),
    "40000_nested_angles": ("<" * 40_000 + "a@evil.example" + ">" * 40_000, None),
    "30000_escaped_quotes": ('"\\"' * 30_000, None),
    "100000_commas": ("," * 100_000, None),
    "100000_backslashes": ("\\" * 100_001 + '"', None),
    "30000_groups": ("g:" * 30_000 + "a@evil.example" + ";" * 30_000, "a@evil.example"),
}


@pytest.mark.parametrize("shape", CRAFTED_FROM)
def test_a_crafted_from_header_under_the_limit_costs_little(shape, eddymail, support,
                                                             tmp_path):
    header, sender = CRAFTED_FROM[shape]
    raw = hostile.with_from(header)
    results = []
    steps = work_done(lambda: results.append(parse_message(raw)),
                      limit=STEPS_PER_HEADER_BYTE * len(header))
    assert steps > len(header)  # the count saw the parser at work
    (parsed,) = results
    assert (parsed.from_.address if parsed.sender_valid else None) == sender
    # Whatever the header held, a display name stays a display name, not a page of text.
    assert all(len(address.name) <= 256 for address in parsed.from_all)
    outcomes = hostile.ingest(eddymail, tmp_path, raw)
    assert outcomes[0]["status"] == "new_ticket"
    # Without one valid sender nobody is registered on the strength of this header.
    users = [user["email"] for user in eddymail.json("user", "list")["users"]]
    assert users == ([sender] if sender else [])


def _html_table(cells: int) -> str:
    return "<table><tr>" + "<td>x</td>" * cells + "</tr></table>"


def test_all_html_parts_of_a_message_share_one_conversion_budget(eddymail, support, tmp_path,
                                                                 monkeypatch):
    # Laying out a megabyte of table cells takes seconds; six such parts used to take the
    # whole parse deadline and more, and the message was quarantined after a long wait.
    # Counted in cells converted, with the parse clock frozen: a slow machine must not
    # quarantine it, a budget per part (six times the work) must fail the count.
    monkeypatch.setattr(parselimits, "time", FakeClock())
    cells = 100_000  # each 10 characters of HTML: one part fills the whole budget
    html = _html_table(cells)
    raw = hostile.mixed(*[hostile.text_part(html, "text/html; charset=utf-8")] * 6)
    outcomes = hostile.ingest(eddymail, tmp_path, raw)
    assert outcomes[0]["status"] == "new_ticket"
    converted = only_ticket(eddymail)["messages"][0]["body_text"].count("x")
    assert 0 < converted <= ParseLimits().max_html_chars // len("<td>x</td>")


def test_the_parse_deadline_stops_slow_work_between_steps(monkeypatch):
    # Every HTML conversion "takes" a second on a fake clock; the deadline is half of one.
    # The first conversion overruns it, the check before the second stops the parse.
    clock = FakeClock()
    monkeypatch.setattr(parselimits, "time", clock)
    conversions = []

    def slow_html_to_text(html: str) -> str:
        conversions.append(len(html))
        clock.advance(1.0)
        return html_to_text(html)

    html_to_text = body.html_to_text
    monkeypatch.setattr(body, "html_to_text", slow_html_to_text)
    raw = hostile.mixed(*[hostile.text_part(_html_table(300), "text/html")] * 20)
    limits = ParseLimits(max_seconds=0.5, max_html_chars=50_000_000)
    with pytest.raises(MessageParseError, match=r"took longer than 0\.5 seconds"):
        parse_message(raw, limits)
    # One conversion step may overrun the deadline, not twenty.
    assert len(conversions) == 1


# --- charsets and broken MIME ---------------------------------------------------------------


RUSSIAN = "Привет, это тест кодировки"


def _body(data: bytes, charset: str | None, encoding: str = "8bit") -> bytes:
    content_type = f"text/plain; charset={charset}" if charset else "text/plain"
    return hostile.raw_mail([("Content-Transfer-Encoding", encoding)], data,
                            content_type=content_type)


GARBLED = {
    # name: (raw message, text the body must contain, whether U+FFFD must appear)
    "unknown_charset_label": (_body(RUSSIAN.encode(), "x-no-such-charset"), RUSSIAN, False),
    "utf8_label_on_windows1251": (_body(RUSSIAN.encode("cp1251"), "utf-8"), RUSSIAN, False),
    "ascii_label_on_koi8r": (_body(RUSSIAN.encode("koi8_r"), "us-ascii"), RUSSIAN, False),
    # (An even number of bytes: an odd one fails as UTF-16 and was detected already.)
    "utf16_label_on_ascii": (_body(b"Printer on fire!", "utf-16"), "Printer on fire!", False),
    "ebcdic_label_on_ascii": (_body(b"The printer is on fire.", "cp500"),
                              "The printer is on fire.", False),
    "dangerous_codec_label": (_body(b"\\x41\\u0042 stays", "unicode_escape"), "\\x41\\u0042 stays",
                              False),
    "invalid_utf8_in_utf8_text": (
        _body("Привет ".encode() + b"\xd0 \xff\xfe " + "мир, всё сломалось".encode(), "utf-8"),
        "Привет \ufffd \ufffd\ufffd мир, всё сломалось", True),
    "truncated_utf8_at_the_end": (_body("Счёт на оплату".encode() + "€".encode()[:2], "utf-8"),
                                  "Счёт на оплату\ufffd", True),
    "utf8_french_cut_inside_a_character": (
        _body("Café crème brûlée ".encode() + "€".encode()[:2], "utf-8"),
        "Café crème brûlée \ufffd", True),
    "utf8_with_a_stray_byte": (_body("Résumé attached ".encode() + b"\xff", "utf-8"),
                               "Résumé attached \ufffd", True),
    "nul_bytes": (_body(b"before\x00after\r\n\x00\r\n", "utf-8"), "before\ufffdafter\n\ufffd",
                  True),
    "utf7_body": (_body(b"Hi +BB8EQAQ4BDIENQRC-", "utf-7"), "Hi Привет", False),
    "bare_lf_line_ends": (hostile.raw_mail(body=b"one\ntwo\n", linesep=b"\n"), "one\ntwo", False),
    "bare_cr_line_ends": (hostile.raw_mail(body=b"one\rtwo\r", linesep=b"\r"), "one\ntwo", False),
    "multipart_without_boundary_parameter": (
        hostile.raw_mail(content_type="multipart/mixed",
                         body=b"--x\r\nContent-Type: text/plain\r\n\r\ninside\r\n--x--\r\n"),
        "inside", False),
    "boundary_never_used": (
        hostile.raw_mail(content_type='multipart/mixed; boundary="nope"', body=b"just text\r\n"),
        "just text", False),
    "closing_boundary_missing": (
        hostile.raw_mail(content_type='multipart/mixed; boundary="b"',
                         body=b"--b\r\nContent-Type: text/plain\r\n\r\nunfinished\r\n"),
        "unfinished", False),
    "base64_with_junk": (_body(b"SGVs!!bG8g\r\nd29y*bGQ", "utf-8", "base64"), "Hello world",
                         False),
}


@pytest.mark.parametrize("case", GARBLED)
def test_garbled_text_is_readable_and_the_raw_bytes_are_kept(
        case, eddymail, support, tmp_path, database_path):
    raw, expected, replaced = GARBLED[case]
    outcomes = hostile.ingest(eddymail, tmp_path, raw)
    assert outcomes[0]["status"] == "new_ticket"
    body = only_ticket(eddymail)["messages"][0]["body_text"]
    assert expected in body
    assert ("\ufffd" in body) is replaced
    assert "\x00" not in body
    assert_raw_kept(database_path, raw)


HEADERS = {
    # name: (Subject header as sent, subject as it must read)
    "encoded_word_split_inside_a_character": (
        "=?UTF-8?B?0J/RgNC40LLQtdE=?=\r\n =?UTF-8?B?gg==?=", "Привет"),
    "last_encoded_word_cut_inside_a_character": ("=?UTF-8?B?0J/RgNC40LLQtdE=?= x",
                                                 "Приве\ufffd x"),
    "encoded_word_in_unknown_charset": ("=?x-unknown-thing?Q?caf=E9?= ok", "caf\ufffd ok"),
    "raw_utf8_subject_cut_inside_a_character": ("Заявка \udcd0", "Заявка \ufffd"),
    "utf16_encoded_word_that_is_ascii": ("=?utf-16?Q?Printer?=", "Printer"),
    "nul_and_line_breaks_in_an_encoded_word": ("=?utf-8?Q?a=00b=0D=0ABcc:_x@evil.example?=",
                                               "a\ufffdb Bcc: x@evil.example"),
    "utf7_encoded_word": ("=?utf-7?Q?+BB8EQAQ4BDIENQRC-?=", "Привет"),
}


@pytest.mark.parametrize("case", HEADERS)
def test_garbled_headers_are_readable_and_the_raw_bytes_are_kept(
        case, eddymail, support, tmp_path, database_path):
    header, expected = HEADERS[case]
    raw = hostile.raw_mail(subject=header)
    assert hostile.ingest(eddymail, tmp_path, raw)[0]["status"] == "new_ticket"
    assert only_ticket(eddymail)["subject"] == expected
    assert_raw_kept(database_path, raw)


def test_escape_sequences_in_utf7_reach_the_text_to_be_shown_escaped(eddymail, support,
                                                                     tmp_path):
    # UTF-7 can spell ESC and U+202E in plain ASCII ("+ABs-", "+IC4-"): a filter looking at the
    # raw bytes sees nothing; the decoded text keeps them, and display escapes them.
    raw = _body(b"+ABs-]0;pwned+AAc- +IC4-txt.exe", "utf-7")
    hostile.ingest(eddymail, tmp_path, raw)
    assert only_ticket(eddymail)["messages"][0]["body_text"] == "\x1b]0;pwned\x07 \u202etxt.exe"
    shown = eddymail("ticket", "show", "1").stdout
    assert "\\x1b]0;pwned\\x07 \\u202etxt.exe" in shown
    assert "\x1b" not in shown and "\u202e" not in shown


# --- HTML -----------------------------------------------------------------------------------


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # the name http.server calls
        self.server.hits.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recording_server() -> Iterator[http.server.HTTPServer]:
    """A loopback HTTP server that records every request it gets (in ``.hits``)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    server.hits = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def connect_attempts(monkeypatch) -> list[object]:
    """Every ``socket.connect`` made from Python; any made at all is refused."""
    attempts: list[object] = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network access is forbidden in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def _remote_references(base: str) -> str:
    return f"""<!DOCTYPE html SYSTEM "{base}/doctype.dtd">
<html><head>
<base href="{base}/base/">
<link rel="stylesheet" href="{base}/link.css">
<meta http-equiv="refresh" content="0; url={base}/refresh">
<style>@import url("{base}/import.css"); body {{ background: url({base}/bg.png) }}</style>
<script src="{base}/script.js"></script>
</head><body background="{base}/body-bg.png">
<p>Visible text.</p>
<img src="{base}/pixel.gif" alt="logo">
<img srcset="{base}/srcset.png 2x" src="{base}/img2.png">
<iframe src="{base}/iframe.html"></iframe>
<object data="{base}/object.swf"></object>
<embed src="{base}/embed.swf">
<video poster="{base}/poster.png"><source src="{base}/video.mp4"></video>
<audio src="{base}/audio.mp3"></audio>
<svg><image href="{base}/svg-image.png"/></svg>
<input type="image" src="{base}/input.png">
<table background="{base}/table-bg.png"><tr><td>cell</td></tr></table>
<div style="background-image: url('{base}/style-bg.png')">styled</div>
</body></html>"""


def test_html_is_converted_without_a_single_network_request(
        eddymail, support, tmp_path, recording_server, connect_attempts):
    base = f"http://127.0.0.1:{recording_server.server_address[1]}"
    raw = hostile.raw_mail(body=_remote_references(base).encode(),
                           content_type="text/html; charset=utf-8")
    assert hostile.ingest(eddymail, tmp_path, raw)[0]["status"] == "new_ticket"
    body = only_ticket(eddymail)["messages"][0]["body_text"]
    assert "Visible text." in body and "[logo]" in body
    # libxml2 would fetch through its own C code, past the Python socket patch: the
    # recording server sees that; the patch sees anything Python-level.
    assert recording_server.hits == []  # type: ignore[attr-defined]
    assert connect_attempts == []


@pytest.mark.parametrize("tag", ["embed", "source", "track", "wbr", "keygen", "image"])
def test_an_html5_void_element_does_not_swallow_the_rest_of_the_mail(tag):
    # libxml2 reads HTML 4: it made everything after <embed> (or <source>, <wbr>...) that
    # element's content, and dropping the element dropped the rest of the mail.
    html = f'<p>Before.</p><{tag} src="x.swf" alt="pic"><p>After: the part that matters.</p>'
    raw = hostile.raw_mail(body=html.encode(), content_type="text/html; charset=utf-8")
    body = parse_message(raw).body_text
    assert "Before." in body and "After: the part that matters." in body


HIDDEN_AND_SCRIPTED = """<html><head>
<style>
.preheader { display: none }
#secret-id, p.also-hidden { visibility: hidden }
@media (max-width: 600px) { .mobile-only { display: block } }
.mobile-only { DISPLAY : NONE !important; }
</style>
<script>document.write("SCRIPT-TEXT")</script>
</head><body>
<span class="preheader">HIDDEN-CLASS</span>
<div id="secret-id">HIDDEN-ID</div>
<p class="also-hidden note">HIDDEN-TAG-CLASS</p>
<div class="mobile-only">HIDDEN-MOBILE</div>
<div style="display:none">HIDDEN-INLINE</div>
<div style="Visibility: Hidden">HIDDEN-VISIBILITY</div>
<div hidden>HIDDEN-ATTRIBUTE</div>
<span style="font-size:0">HIDDEN-FONT</span>
<span style="opacity:0.0">HIDDEN-OPACITY</span>
<div style="max-height:0;overflow:hidden">HIDDEN-HEIGHT</div>
<div style="mso-hide:all">HIDDEN-MSO</div>
<p>Please <a href="https://evil.example/login">https://bank.example/login</a> now.</p>
<p><a href="https://evil.example/pay">Your bank</a></p>
<p><a href="https://bank.example/">bank.example</a></p>
<noscript>Shown without scripts</noscript>
<p onclick="alert('HANDLER-TEXT')">Shown text</p>
</body></html>"""


def test_html_scripts_and_hidden_text_are_absent_and_links_show_their_target(
        eddymail, support, tmp_path):
    raw = hostile.raw_mail(body=HIDDEN_AND_SCRIPTED.encode(),
                           content_type="text/html; charset=utf-8")
    hostile.ingest(eddymail, tmp_path, raw)
    body = only_ticket(eddymail)["messages"][0]["body_text"]
    assert "Shown text" in body
    assert "SCRIPT-TEXT" not in body and "HANDLER-TEXT" not in body
    assert "HIDDEN" not in body, body
    # A link whose text names another target shows where it really goes.
    assert "https://bank.example/login <https://evil.example/login>" in body
    assert "Your bank <https://evil.example/pay>" in body
    # Text that already is the target is not repeated.
    assert "bank.example" in body and "<https://bank.example/>" not in body


def test_html_control_characters_and_entities_are_kept_for_display_to_escape():
    html = "<p>a\x1b[2Jb &#27;]0;t&#7; \x9b &#0; &#x202e;x</p>"
    raw = hostile.raw_mail(body=html.encode(), content_type="text/html; charset=utf-8")
    body = parse_message(raw).body_text
    assert body == "a\x1b[2Jb \x1b]0;t\x07 \x9b \ufffd \u202ex"
