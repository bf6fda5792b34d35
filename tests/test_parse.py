"""Parsing hostile mail: sample messages in tests/data/mail and bombs generated in code."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

from eddymail.errors import MessageParseError
from eddymail.mail.message import body
from eddymail.mail.message.charsets import decode_body, detect_and_decode, lookup_charset
from eddymail.mail.message.filenames import safe_filename
from eddymail.mail.message.headervalues import decode_header, extract_ids, parse_parameters
from eddymail.mail.message.htmltext import html_to_text
from eddymail.mail.message.mimesplit import split
from eddymail.mail.message.parse import (
    Address,
    ParsedMessage,
    ParseLimits,
    parse_message,
)
from eddymail.mail.message.parselimits import Deadline
from eddymail.mail.message.parttree import build_tree

DATA = Path(__file__).parent / "data" / "mail"
SAMPLES = Path(__file__).parents[1] / "eddymail" / "samples"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def load(name: str) -> ParsedMessage:
    return parse_message((DATA / name).read_bytes())


def message(headers: str, body: str | bytes = "Hello.\n", *, content_type: str = "") -> bytes:
    """A small CRLF message; ``headers`` are extra header lines separated by newlines."""
    lines = ["From: Anna <anna@example.org>", "To: support@example.com", "Subject: Test"]
    lines += [line for line in headers.split("\n") if line]
    if content_type:
        lines += ["MIME-Version: 1.0", f"Content-Type: {content_type}"]
    head = "\r\n".join(lines).encode() + b"\r\n\r\n"
    data = body.encode() if isinstance(body, str) else body
    return head + data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# --- plain messages, headers, addresses -------------------------------------------------


def test_plain_message_headers_and_body() -> None:
    parsed = load("plain.eml")
    assert parsed.subject == "Printer on the second floor keeps jamming"
    assert parsed.from_ == Address("Anna.Schmidt@example.org", "Anna Schmidt")
    assert parsed.sender_valid is True
    assert parsed.to == [
        Address("support@example.com", "Support"),
        Address("john.doe@example.com", "Doe, John"),
    ]
    assert parsed.cc == [Address("juergen@example.net", "Jürgen Müller")]
    assert parsed.reply_to == [Address("anna.private@example.org", "")]
    assert parsed.date == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert parsed.message_id == "20261127100000.4F2A1@mail.example.org"
    assert parsed.in_reply_to == ["ticket-41@helpdesk.example.com"]
    assert parsed.references == ["older@example.org", "ticket-41@helpdesk.example.com"]
    assert parsed.body_text == (
        "Hello,\n\nthe printer on the second floor (HP LaserJet, room 2.14) jams every second "
        "page since this morning.\n\nThanks,\nAnna"
    )
    assert parsed.has_html is False
    assert parsed.attachments == []
    assert (parsed.auto_reply, parsed.bounce, parsed.mailing_list) == (False, False, False)
    assert parsed.automatic_reasons == []
    assert parsed.defects == []


def test_to_json_has_exactly_the_inspect_keys() -> None:
    document = load("plain.eml").to_json()
    assert list(document) == [
        "subject", "from", "to", "cc", "reply_to", "date", "message_id", "in_reply_to",
        "references", "body_text", "has_html", "attachments", "auto_reply", "bounce",
        "mailing_list",
    ]  # fmt: skip
    assert document["from"] == {"address": "Anna.Schmidt@example.org", "name": "Anna Schmidt"}
    assert document["date"] == "2026-11-27T10:00:00Z"
    assert document["reply_to"] == [{"address": "anna.private@example.org", "name": ""}]
    with_attachments = load("attachments.eml").to_json()
    assert with_attachments["attachments"][0] == {
        "filename": "logo.png",
        "content_type": "image/png",
        "size": len(PNG),
    }


def test_bare_lf_and_crlf_give_the_same_result() -> None:
    crlf = (DATA / "plain.eml").read_bytes()
    assert b"\r\n" in crlf
    assert parse_message(crlf.replace(b"\r\n", b"\n")).to_json() == parse_message(crlf).to_json()
    lf = load("bare_lf.eml")
    assert lf.subject == "Sent from a Unix pipe"
    assert lf.body_text == "Line one.\nLine two."
    assert lf.has_html is True


def test_from_display_name_that_looks_like_an_address() -> None:
    parsed = parse_message(
        b'From: "support@bank.com" <evil@X.example>\r\nSubject: hi\r\n\r\nbody\r\n'
    )
    assert parsed.from_ == Address("evil@x.example", "support@bank.com")
    assert parsed.sender_valid is True


def test_encoded_name_cannot_smuggle_an_address() -> None:
    raw = (
        b"From: =?utf-8?q?boss=40corp.example_=3Cboss=40corp.example=3E?= <real@x.example>\r\n\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.from_all == [Address("real@x.example", "boss@corp.example <boss@corp.example>")]


def test_several_from_addresses_are_not_a_valid_sender() -> None:
    parsed = parse_message(b"From: a@example.org, b@example.org\r\n\r\nx\r\n")
    assert parsed.from_ == Address("a@example.org", "")
    assert [item.address for item in parsed.from_all] == ["a@example.org", "b@example.org"]
    assert parsed.sender_valid is False
    two_headers = parse_message(b"From: a@example.org\r\nFrom: b@example.org\r\n\r\nx\r\n")
    assert len(two_headers.from_all) == 2
    assert two_headers.sender_valid is False


def test_unparseable_from() -> None:
    parsed = parse_message(b"From: Totally not an address\r\nSubject: x\r\n\r\nx\r\n")
    assert parsed.from_ is None
    assert parsed.from_all == []
    assert parsed.sender_valid is False
    assert parsed.to_json()["from"] is None
    assert parsed.defects == ["from header has 1 entries that are not valid addresses"]


def test_from_with_one_good_and_one_garbage_entry_is_not_valid() -> None:
    parsed = parse_message(b"From: good@example.org, @@garbage\r\n\r\nx\r\n")
    assert parsed.from_ == Address("good@example.org", "")
    assert parsed.sender_valid is False


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        # The CVE-2023-27043 shapes: the angle address is authoritative on every Python.
        ("alice@example.org <bob@example.com>", [("bob@example.com", "alice@example.org")]),
        ('"alice@example.org"@example.com', [('"alice@example.org"@example.com', "")]),
        ("alice@example.org)<bob@example.com>", [("bob@example.com", "alice@example.org)")]),
        ("Team: a@example.org, b@example.org;", [("a@example.org", ""), ("b@example.org", "")]),
        ("undisclosed-recipients:;", []),
        ("bob@Example.COM (Bob Builder)", [("bob@example.com", "Bob Builder")]),
        ("<@relay.example:user@host.example>", [("user@host.example", "")]),
        ("Иван <ivan@Пример.РФ>", [("ivan@пример.рф", "Иван")]),
    ],
)
def test_address_list_shapes(header: str, expected: list[tuple[str, str]]) -> None:
    raw = b"From: x@example.org\r\nTo: " + header.encode() + b"\r\n\r\nx\r\n"
    assert [(item.address, item.name) for item in parse_message(raw).to] == expected


def test_header_control_characters_are_kept_and_injected_newlines_flattened() -> None:
    # Controls are kept (display escapes them, outgoing headers drop them); NUL, which no
    # database stores, shows as U+FFFD; a line break becomes a space.
    parsed = load("nul_bytes.eml")
    assert parsed.subject == "Invoice\ufffd 42\x1b[2J"
    injected = parse_message(b"Subject: =?utf-8?q?Hello=0D=0ABcc:_x@example.org?=\r\n\r\nx\r\n")
    assert injected.subject == "Hello Bcc: x@example.org"


def test_date_is_utc_or_none() -> None:
    assert parse_message(message("Date: Fri, 27 Nov 2026 13:00:00 +0300")).date == datetime(
        2026, 11, 27, 10, 0, tzinfo=UTC
    )
    unknown_zone = parse_message(message("Date: Fri, 27 Nov 2026 13:00:00 -0000")).date
    assert unknown_zone == datetime(2026, 11, 27, 13, 0, tzinfo=UTC)
    assert parse_message(message("Date: yesterday at noon")).date is None
    assert parse_message(message("Date: Mon, 32 Foo 99999 99:99:99 +9999")).date is None
    assert parse_message(message("")).to_json()["date"] is None


def test_message_ids_are_extracted_and_capped() -> None:
    references = " ".join(f"<ref-{number}@example.org>" for number in range(80))
    raw = message(
        "Message-ID: bare-id@example.org\n"
        "In-Reply-To: <parent@example.org> (sent by Bob) <other@example.org>\n"
        f"References: {references}\n"
        f"References: <{'x' * 300}@example.org>"
    )
    parsed = parse_message(raw)
    assert parsed.message_id == "bare-id@example.org"
    assert parsed.in_reply_to == ["parent@example.org", "other@example.org"]
    assert len(parsed.references) == 50
    assert parsed.references[0] == "ref-30@example.org"
    assert parsed.references[-1] == "ref-79@example.org"
    assert extract_ids(b"<a@b>\r\n <c @\r\n d> <a@b> <>", 10) == ["a@b", "c@d"]


# --- charsets -----------------------------------------------------------------------------


def test_koi8r_body_subject_and_name() -> None:
    parsed = load("koi8r.eml")
    assert parsed.subject == "Не работает принтер"
    assert parsed.from_ == Address("ivan@example.ru", "Иван Петров")
    assert parsed.body_text == (
        "Здравствуйте!\n\nПринтер в бухгалтерии не печатает.\n\nС уважением,\nИван Петров"
    )
    assert parsed.defects == []


def test_windows1251_body_without_charset_and_raw_8bit_subject() -> None:
    parsed = load("cp1251_no_charset.eml")
    assert parsed.subject == "Не могу войти"
    assert parsed.body_text == (
        "Добрый день! Не могу войти в почту, пишет «неверный пароль».\n\nМария"
    )
    assert parsed.defects == ["text/plain part has no charset; decoded as windows-1251"]


def test_windows1251_body_labelled_utf8() -> None:
    parsed = load("cp1251_labelled_utf8.eml")
    assert parsed.subject == "Счёт"
    assert parsed.body_text == "Счёт №15 не пришёл. Проверьте, пожалуйста."
    assert parsed.defects == [
        "text/plain part was labelled charset 'utf-8' but its bytes are not; "
        "decoded as windows-1251"
    ]


def test_base64_subject_split_in_the_middle_of_a_character() -> None:
    assert load("subject_split.eml").subject == "Привет, это очень длинная тема письма"


def test_koi8r_labelled_ascii_is_detected() -> None:
    text = "Срочно: не работает почта у всего отдела"
    decoded = decode_body(text.encode("koi8_r"), "us-ascii", "text/plain part")
    assert decoded.text == text
    assert decoded.charset == "koi8-r"
    assert decoded.note == (
        "text/plain part was labelled charset 'us-ascii' but its bytes are not; decoded as koi8-r"
    )


def test_single_byte_label_on_utf8_bytes_is_repaired() -> None:
    decoded = decode_body("Привет, мир".encode(), "koi8-r", "text/plain part")
    assert (decoded.text, decoded.charset) == ("Привет, мир", "utf-8")
    assert decoded.note == "text/plain part was labelled charset 'koi8-r' but is UTF-8"
    assert decode_body("Привет, мир".encode("koi8_r"), "KOI8-R").text == "Привет, мир"


def test_latin1_label_means_windows1252() -> None:
    assert decode_body(b"It\x92s \x93quoted\x94", "iso-8859-1").text == "It’s “quoted”"


@pytest.mark.parametrize(
    "text", ["Привет", "ПРИВЕТ", "Счёт на оплату, 15 шт.", "Hi. С уважением, Иван"]
)
@pytest.mark.parametrize("charset", ["cp1251", "koi8_r"])
def test_short_cyrillic_is_detected(text: str, charset: str) -> None:
    assert detect_and_decode(text.encode(charset)).text == text


def test_latin_text_without_charset_is_windows1252() -> None:
    decoded = detect_and_decode("Café crème brûlée, Grüße aus München".encode("cp1252"))
    assert decoded.text == "Café crème brûlée, Grüße aus München"
    assert decoded.charset == "windows-1252"


def test_utf7_body_and_subject() -> None:
    parsed = load("utf7.eml")
    assert parsed.subject == "Café"
    assert parsed.body_text == "Hi Mom -☺-! Привет."


def test_unknown_charset_x_foo() -> None:
    parsed = load("unknown_charset.eml")
    assert parsed.subject == "Stra\ufffde caf\ufffd"
    assert parsed.body_text == "Привет из неизвестной кодировки."
    assert parsed.defects == [
        "text/plain part has unknown charset 'x-foo'; decoded as windows-1251"
    ]


def test_dangerous_and_non_text_codecs_are_refused() -> None:
    for label in ("base64", "rot13", "unicode_escape", "raw-unicode-escape", "idna", "zlib"):
        assert lookup_charset(label) is None
    decoded = decode_body(b"caf\\u00e9 \\x41", "unicode_escape")
    assert decoded.text == "caf\\u00e9 \\x41"
    assert lookup_charset("Windows-1251") == "cp1251"
    assert lookup_charset("gb2312") == "gb18030"


def test_encoded_words_are_joined_per_charset_and_whitespace_between_dropped() -> None:
    raw = b"a =?utf-8?q?b?= =?utf-8?q?c?= d =?iso-8859-1?q?=E9?= =?utf-8?q?=C3=A9?="
    assert decode_header(raw) == "a bc d éé"
    assert decode_header(b"=?bogus?B?!!!?= tail") == "tail"
    assert decode_header(b"=?utf-8?q?broken_=ZZ?=") == "broken =ZZ"


def test_nul_bytes_are_replaced_and_controls_kept_in_the_body() -> None:
    parsed = load("nul_bytes.eml")
    assert parsed.body_text == "Line one\ufffd\nLine\x01 two\x1b[31m red\x7f\n\ufffd"
    assert "\x00" not in parsed.body_text


# --- HTML -----------------------------------------------------------------------------------


def test_html_only_message_is_converted_safely() -> None:
    parsed = load("html_only.eml")
    assert parsed.has_html is True
    assert parsed.body_text == (
        "Dear customer,\n\n"
        "Your mailbox is almost full. Please https://bank.example.com/login "
        "<https://evil.example/login> to keep it.\n\n"
        "[Bank logo]\n\n"
        "Contact help@bank.example.com or read our FAQ <https://bank.example.com/faq>.\n\n"
        "Grüße,\nDas Team"
    )
    for hidden in ("hidden preheader", "also hidden", "document.cookie", "alert", "color: red"):
        assert hidden not in parsed.body_text


def test_html_does_not_expand_external_entities() -> None:
    html = (
        '<!DOCTYPE html SYSTEM "http://127.0.0.1:9/x.dtd" '
        '[<!ENTITY e SYSTEM "file:///etc/passwd">]><p>before &e; after</p>'
    )
    text = html_to_text(html)
    assert "root:" not in text
    assert "before" in text
    assert "after" in text


def test_html_layout_tables_lists_and_hidden_styles() -> None:
    html = (
        '<table role="presentation"><tr><td><img alt="ACME"></td><td>Invoice #42</td></tr></table>'
        "<ul><li>One</li><li>Two</li></ul>"
        '<span style="font-size:0px">zero</span><div style="max-height:0;overflow:hidden">pre</div>'
        '<div style="DISPLAY : NONE !important">gone</div><p style="visibility:hidden">gone</p>'
        '<a href="https://acme.example/">acme.example</a> <a href="#top">Top</a>'
    )
    assert html_to_text(html) == "[ACME]\nInvoice #42\n  * One\n  * Two\nacme.example Top"


def test_deeply_nested_html_does_not_raise() -> None:
    html = "<div>" * 20000 + "deep" + "</div>" * 20000 + "<p>end</p>"
    assert "end" in html_to_text(html)


def test_blank_plain_alternative_falls_back_to_html() -> None:
    body = (
        "--a\nContent-Type: text/plain; charset=utf-8\n\n \n"
        "--a\nContent-Type: text/html; charset=utf-8\n\n<p>Only <b>here</b>.</p>\n--a--\n"
    )
    parsed = parse_message(message("", body, content_type='multipart/alternative; boundary="a"'))
    assert parsed.body_text == "Only here."
    assert parsed.has_html is True


def test_html_charset_from_meta_tag() -> None:
    html = '<html><head><meta charset="koi8-r"></head><body><p>Привет мир</p></body></html>'
    raw = message("", b"", content_type="text/html") + html.encode("koi8_r")
    assert parse_message(raw).body_text == "Привет мир"


def test_oversized_html_is_cut_with_a_note() -> None:
    raw = message("", "<p>" + "word " * 5000 + "</p>", content_type="text/html; charset=utf-8")
    parsed = parse_message(raw, ParseLimits(max_html_chars=1000))
    assert len(parsed.body_text) < 1000
    assert parsed.defects == ["HTML body cut to the first 1000 characters"]


# --- structure, attachments, forwards -------------------------------------------------------


def test_alternative_prefers_plain_text() -> None:
    parsed = load("alternative.eml")
    assert parsed.body_text == "Hi team,\n\nplease reset my VPN password.\n\nBest, Olga"
    assert parsed.has_html is True


def test_attachments_and_inline_image() -> None:
    parsed = load("attachments.eml")
    assert parsed.body_text == "Invoice and log attached."
    assert parsed.has_html is True
    logo, invoice, report = parsed.attachments
    assert (logo.filename, logo.content_type, logo.content_id, logo.inline) == (
        "logo.png",
        "image/png",
        "logo123@example.org",
        True,
    )
    assert logo.data == PNG
    assert logo.size == len(PNG)
    assert (invoice.filename, invoice.original_filename) == ("Счёт 15.pdf", "Счёт 15.pdf")
    assert invoice.data.startswith(b"%PDF-1.4\n")
    assert invoice.inline is False
    assert (report.filename, report.content_type) == ("report.csv", "text/csv")
    assert report.data == b"date,pages\r\n2026-11-27,12"
    assert "data" not in repr(report)


def test_hostile_attachment_names_become_safe() -> None:
    parsed = load("hostile_names.eml")
    assert parsed.body_text == "See attachments."
    names = [(item.filename, item.original_filename) for item in parsed.attachments]
    long_name = "A" * 196 + ".pdf"
    assert names == [
        ("x.txt", "../../x.txt"),
        ("passwd", "/etc/passwd"),
        ("evil.dll", "C:\\Windows\\System32\\evil.dll"),
        ("shadow", "../../etc/shadow"),
        ("evil_name_.exe", "evil\ufffdname\x01.exe"),
        (long_name, "A" * 2000),
        ("_CON.txt", "CON.txt"),
        ("attachment-8.bin", ""),
        ("Отчёт.docx", "Отчёт.docx"),
        ("invoice_fdp.exe", "invoice\u202efdp.exe"),
        ("attachment-11.bin", ".."),
    ]
    assert [item.data for item in parsed.attachments][:3] == [b"one", b"two", b"three"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NUL", "_NUL"),
        ("aux.tar.gz", "_aux.tar.gz"),
        ("com1", "_com1"),
        ("a..b...txt", "a.b.txt"),
        ("  .bashrc ", "bashrc"),
        ("report?.pdf", "report_.pdf"),
        ("Я" * 300 + ".docx", "Я" * 117 + ".docx"),
        ("", "attachment-3.pdf"),
    ],
)
def test_safe_filename(name: str, expected: str) -> None:
    assert safe_filename(name, 3, "application/pdf") == expected


def test_rfc2231_parameters() -> None:
    value, params = parse_parameters(
        b"attachment; filename*0*=utf-8''%D0%9E%D1%82; filename*1*=%D1%87%D1%91%D1%82.pdf; x=1"
    )
    assert value == "attachment"
    assert params == {"filename": "Отчёт.pdf", "x": "1"}
    assert parse_parameters(b"attachment; filename*=''..%2F..%2Fetc%2Fpasswd")[1] == {
        "filename": "../../etc/passwd"
    }
    assert parse_parameters(b'text/plain; charset="unterminated')[1] == {"charset": "unterminated"}


def test_forwarded_message_inline() -> None:
    parsed = load("forwarded.eml")
    assert parsed.body_text == (
        "FYI — the customer's original complaint is below.\n\n"
        "---------- Forwarded message ----------\n"
        "From: Petr Ivanov <petr@example.ru>\n"
        "Date: Thu, 26 Nov 2026 09:15:00 +0300\n"
        "Subject: Проблема с VPN\n"
        "To: it@example.com\n\n"
        "VPN не подключается с утра."
    )
    (forwarded,) = parsed.attachments
    assert forwarded.filename == "Проблема с VPN.eml"
    assert forwarded.original_filename == ""
    assert forwarded.content_type == "message/rfc822"
    raw = (DATA / "forwarded.eml").read_bytes()
    start = raw.index(b"From: Petr Ivanov")
    end = raw.index(b"\r\n--fwd--")
    assert forwarded.data == raw[start:end]
    assert parse_message(forwarded.data).message_id == "inner-1@example.ru"


def test_forwarded_attachment_shown_when_outer_body_is_empty() -> None:
    parsed = load("forwarded_attachment.eml")
    assert parsed.body_text.startswith("---------- Forwarded message ----------\n")
    assert parsed.body_text.endswith("\n\nVPN не подключается с утра.")
    assert [item.filename for item in parsed.attachments] == ["original.eml"]


def test_forwarded_attachment_not_shown_when_there_is_a_body() -> None:
    inner = "From: x@example.org\nSubject: Old\n\nold text\n"
    body = (
        "--f\nContent-Type: text/plain\n\nSee the attached mail.\n"
        f"--f\nContent-Type: message/rfc822\nContent-Disposition: attachment\n\n{inner}--f--\n"
    )
    parsed = parse_message(message("", body, content_type='multipart/mixed; boundary="f"'))
    assert parsed.body_text == "See the attached mail."
    assert [item.filename for item in parsed.attachments] == ["Old.eml"]


def test_base64_encoded_message_rfc822_is_decoded() -> None:
    inner = base64.b64encode(b"From: x@example.org\r\nSubject: Inner\r\n\r\ninner text\r\n")
    body = (
        "--f\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"
        + inner.decode()
        + "\n--f--\n"
    )
    parsed = parse_message(message("", body, content_type='multipart/mixed; boundary="f"'))
    assert parsed.body_text.endswith("Subject: Inner\n\ninner text")
    assert parsed.attachments[0].filename == "Inner.eml"
    assert parsed.defects == ["message/rfc822 part is base64-encoded; decoded it"]


def test_broken_mime_missing_closing_boundary() -> None:
    parsed = load("broken_mime.eml")
    assert parsed.body_text == "The screenshot is attached."
    assert [(item.filename, item.data) for item in parsed.attachments] == [("screen.png", PNG)]
    assert parsed.defects == ["a multipart has no closing boundary; it was read to the end"]


def test_multipart_without_boundary_is_repaired() -> None:
    parsed = load("missing_boundary.eml")
    assert parsed.body_text == "Body of a message whose boundary parameter got lost."
    assert [(item.filename, item.data) for item in parsed.attachments] == [("notes.txt", b"notes")]
    assert parsed.defects == [
        "multipart/mixed part has no boundary parameter; used 'frontier' found in its body"
    ]


def test_bad_base64_attachment_is_decoded_leniently() -> None:
    body = (
        "--m\nContent-Type: text/plain\n\nbody\n"
        "--m\nContent-Type: application/octet-stream; name=a.bin\n"
        "Content-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQ*!\n--m--\n"
    )
    parsed = parse_message(message("", body, content_type='multipart/mixed; boundary="m"'))
    assert parsed.attachments[0].data == b"hello world"


def test_format_flowed_is_joined() -> None:
    body = "This is a long \nflowed line.\n> quoted \n> text\n-- \nsig\n"
    raw = message("", body, content_type="text/plain; charset=utf-8; format=flowed")
    assert parse_message(raw).body_text == "This is a long flowed line.\n> quoted text\n--\nsig"


def test_bundled_welcome_sample() -> None:
    parsed = parse_message((SAMPLES / "welcome.eml").read_bytes())
    assert parsed.subject == "Printer on the 2nd floor keeps jamming"
    assert parsed.from_ == Address("anna.schmidt@example.org", "Anna Schmidt")
    assert parsed.sender_valid is True
    assert parsed.has_html is True
    assert parsed.body_text.startswith("Hi there,\n\nthe big printer next to the kitchen")
    assert parsed.automatic_reasons == []
    assert parsed.defects == []


def test_one_walk_builds_the_decoded_part_tree() -> None:
    defects: list[str] = []
    raw = load_bytes("forwarded_attachment.eml")
    root = build_tree(split(raw, Deadline(60)), ParseLimits(), Deadline(60), defects, b"\r\n")
    assert root.mime.content_type == "multipart/mixed"
    assert root.headers.first("message-id") == b"<fwd-2@example.com>"
    text, forwarded = root.children
    assert (text.mime.content_type, text.charset, text.data) == ("text/plain", "utf-8", b"")
    assert (forwarded.mime.disposition, forwarded.mime.filename) == ("attachment", "original.eml")
    assert forwarded.enclosed is not None
    assert forwarded.enclosed.text("subject") == "Проблема с VPN"
    (inner,) = forwarded.children
    assert inner.headers is not forwarded.headers and inner.mime.content_type == "text/plain"
    assert inner.data == "VPN не подключается с утра.\r\n".encode()
    assert forwarded.data.startswith(b"From: Petr Ivanov <petr@example.ru>\r\nTo: it@")
    assert defects == []


def test_raw_8bit_names_are_read_with_the_charset_of_a_later_text_part() -> None:
    # Guessing alone reads these four ISO-8859-2 bytes as Cyrillic.
    name = "Łódź".encode("iso8859_2")
    raw = (b"From: a@example.org\r\nSubject: " + name + b"\r\n"
           b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           b'--b\r\nContent-Type: application/pdf; name="' + name + b'.pdf"\r\n\r\nx\r\n'
           b"--b\r\nContent-Type: text/plain; charset=iso-8859-2\r\n\r\n" + name + b"\r\n"
           b"--b--\r\n")
    parsed = parse_message(raw)
    assert (parsed.subject, parsed.body_text) == ("Łódź", "Łódź")
    assert parsed.attachments[0].filename == "Łódź.pdf"


# --- classification -------------------------------------------------------------------------


def test_bounce_with_original_message() -> None:
    parsed = load("bounce.eml")
    assert parsed.bounce is True
    assert parsed.auto_reply is True
    assert parsed.mailing_list is False
    assert parsed.automatic_reasons == [
        "auto-submitted: auto-replied",
        "null sender",
        "mailer-daemon",
        "multipart/report",
    ]
    assert parsed.bounce_original_message_id == "reply-77.ticket-41@helpdesk.example.com"
    assert parsed.body_text.startswith("This is the mail system at host mx.example.com.")
    assert [(item.filename, item.content_type) for item in parsed.attachments] == [
        ("delivery-status.txt", "message/delivery-status"),
        ("[#41] Printer on the second floor.eml", "message/rfc822"),
    ]
    assert b"Status: 5.1.1" in parsed.attachments[0].data


def test_bounce_with_rfc822_headers_from_postmaster() -> None:
    parsed = load("bounce_headers.eml")
    assert (parsed.bounce, parsed.auto_reply) == (True, False)
    assert parsed.automatic_reasons == ["postmaster", "multipart/report"]
    assert parsed.bounce_original_message_id == "reply-9.ticket-7@helpdesk.example.com"
    assert parsed.attachments[1].filename == "original-headers.txt"


def test_old_style_bounce_without_report() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.net\r\nSubject: failure notice\r\n\r\n"
        b"Sorry, I couldn't deliver your message.\r\n\r\n--- Below this line is a copy.\r\n\r\n"
        b"Message-ID: <reply-5.ticket-3@helpdesk.example.com>\r\nSubject: Re: [#3]\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.bounce is True
    assert parsed.automatic_reasons == ["mailer-daemon"]
    assert parsed.bounce_original_message_id == "reply-5.ticket-3@helpdesk.example.com"


def test_auto_reply() -> None:
    parsed = load("auto_reply.eml")
    assert (parsed.auto_reply, parsed.bounce, parsed.mailing_list) == (True, False, False)
    assert parsed.automatic_reasons == ["auto-submitted: auto-replied", "x-auto-response-suppress"]
    assert parsed.in_reply_to == ["reply-76.ticket-41@helpdesk.example.com"]


def test_mailing_list() -> None:
    parsed = load("mailing_list.eml")
    assert (parsed.auto_reply, parsed.bounce, parsed.mailing_list) == (False, False, True)
    assert parsed.automatic_reasons == ["precedence: bulk", "list-id", "list-unsubscribe"]


def test_auto_submitted_no_is_a_person() -> None:
    parsed = parse_message(message("Auto-Submitted: no (written by a person)"))
    assert parsed.auto_reply is False
    assert parsed.automatic_reasons == []


def test_loop_signals_without_flags_still_suppress_auto_replies() -> None:
    parsed = parse_message(message("Return-Path: <>\nX-Loop: helpdesk@example.com"))
    assert (parsed.auto_reply, parsed.bounce, parsed.mailing_list) == (False, False, False)
    assert parsed.automatic_reasons == ["x-loop", "null sender"]


def test_read_receipt_is_automatic_not_a_bounce() -> None:
    body = (
        "--r\nContent-Type: text/plain\n\nYour message was displayed.\n"
        "--r\nContent-Type: message/disposition-notification\n\n"
        "Final-Recipient: rfc822; anna@example.org\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\n"
        "--r--\n"
    )
    content_type = 'multipart/report; report-type=disposition-notification; boundary="r"'
    parsed = parse_message(message("", body, content_type=content_type))
    assert (parsed.auto_reply, parsed.bounce) == (True, False)
    assert parsed.automatic_reasons == ["multipart/report"]
    assert parsed.attachments[0].filename == "read-receipt.txt"


# --- limits and bombs -----------------------------------------------------------------------


def nested_multiparts(levels: int, linesep: bytes = b"\r\n") -> bytes:
    parts = [b"From: a@example.org" + linesep + b"Subject: bomb" + linesep]
    for level in range(levels):
        parts.append(
            b'Content-Type: multipart/mixed; boundary="b%d"' % level + linesep * 2
            + b"--b%d" % level + linesep
        )  # fmt: skip
    parts.append(b"Content-Type: text/plain" + linesep * 2 + b"x" + linesep)
    parts += [b"--b%d--" % level + linesep for level in reversed(range(levels))]
    return b"".join(parts)


def many_parts(count: int) -> bytes:
    part = b"--p\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    return (
        b'From: a@example.org\r\nContent-Type: multipart/mixed; boundary="p"\r\n\r\n'
        + part * count
        + b"--p--\r\n"
    )


@pytest.mark.parametrize("linesep", [b"\r\n", b"\n", b"\r"])
def test_nesting_bomb_is_rejected(linesep: bytes) -> None:
    with pytest.raises(MessageParseError, match="nests MIME parts more than 30 levels deep"):
        parse_message(nested_multiparts(1000, linesep))


def test_nested_message_rfc822_bomb_is_rejected() -> None:
    raw = b"From: a@example.org\r\n" + b"Content-Type: message/rfc822\r\n\r\n" * 1000 + b"x\r\n"
    with pytest.raises(MessageParseError, match="levels deep"):
        parse_message(raw)


def test_reasonable_nesting_is_accepted() -> None:
    assert parse_message(nested_multiparts(25)).body_text == "x"


def test_part_bomb_is_rejected() -> None:
    with pytest.raises(MessageParseError, match=r"message has 20001 MIME parts, the limit is 1000"):
        parse_message(many_parts(20000))


def test_part_limit_is_configurable() -> None:
    assert parse_message(many_parts(900)).body_text.count("x") == 900
    with pytest.raises(MessageParseError, match="the limit is 10"):
        parse_message(many_parts(900), ParseLimits(max_parts=10))


def test_parameter_bomb_is_rejected() -> None:
    raw = (
        b"From: a@example.org\r\nContent-Type: multipart/mixed; "
        + b'a=";' * 100000
        + b' boundary="b"\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n'
    )
    with pytest.raises(MessageParseError, match="has 100001 parameters, the limit is 100"):
        parse_message(raw)


def test_message_and_header_size_limits() -> None:
    limits = ParseLimits(max_message_bytes=1000, max_header_bytes=200)
    too_big = message("", "x" * 1400 + "\n")
    expected = f"message is {len(too_big)} bytes, the limit is 1000 bytes"
    with pytest.raises(MessageParseError, match=expected):
        parse_message(too_big, limits)
    with pytest.raises(MessageParseError, match="header block is larger than 200 bytes"):
        parse_message(message("X-Padding: " + "y" * 300), limits)
    assert parse_message(message(""), limits).subject == "Test"


def test_time_budget() -> None:
    with pytest.raises(MessageParseError, match="took longer than"):
        parse_message(load_bytes("plain.eml"), ParseLimits(max_seconds=-1))


def test_unexpected_errors_become_parse_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_html: str) -> str:
        raise RuntimeError("converter bug")

    monkeypatch.setattr(body, "html_to_text", broken)
    with pytest.raises(MessageParseError, match=r"RuntimeError: converter bug"):
        parse_message(load_bytes("html_only.eml"))


def test_only_bytes_are_accepted() -> None:
    with pytest.raises(TypeError):
        parse_message("From: a@example.org\r\n\r\nx")  # type: ignore[arg-type]
    assert parse_message(bytearray(load_bytes("plain.eml"))).subject.startswith("Printer")


def test_empty_and_garbage_input_do_not_raise() -> None:
    empty = parse_message(b"")
    assert (empty.subject, empty.body_text, empty.from_) == ("", "", None)
    garbage = parse_message(b"\xff\xfe\x00garbage\r\n:::\r\n\r\n\x00\x01body")
    assert (garbage.from_, garbage.sender_valid) == (None, False)
    assert garbage.body_text.endswith("garbage\n:::\n\n\ufffd\x01body")
    assert "a header block does not end with an empty line" in garbage.defects


def load_bytes(name: str) -> bytes:
    return (DATA / name).read_bytes()
