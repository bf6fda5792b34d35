"""Outgoing mail: subject prefixes and ticket tags, header safety, and parser round trips."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime, timedelta, timezone
from email import policy as email_policy
from email.header import decode_header, make_header
from email.message import EmailMessage

import pytest

from eddymail.errors import ValidationError
from eddymail.mail.message.compose import (
    OutgoingAttachment,
    OutgoingMail,
    build_message,
    envelope_recipients,
    make_message_id,
    sanitize_header_value,
    validate_address,
)
from eddymail.mail.message.subjects import (
    DEFAULT_TAG_FORMAT,
    find_ticket_tags,
    reply_subject,
    strip_reply_prefixes,
    strip_ticket_tags,
)

# An RFC 2047 encoded word hiding CR LF and a Bcc header: Python < 3.11.10 writes it out
# decoded (CVE-2024-6923) if the value is handed to the email package as is.
ENCODED_INJECTION = "=?utf-8?q?hi=0D=0ABcc:_evil@attacker.example?="


def make_mail(**overrides: object) -> OutgoingMail:
    values: dict[str, object] = {
        "from_address": "support@example.com",
        "from_name": "Support",
        "to": ["ivan@example.org"],
        "cc": [],
        "subject": "Printer on fire",
        "body_text": "Hello.\n",
    }
    values.update(overrides)
    return OutgoingMail(**values)  # type: ignore[arg-type]


def build(mail: OutgoingMail, **kwargs: object) -> bytes:
    kwargs.setdefault("message_id", "eddymail.test@example.com")
    return build_message(mail, **kwargs)  # type: ignore[arg-type]


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email_policy.default)
    assert isinstance(message, EmailMessage)
    return message


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def text_of(part: EmailMessage) -> str:
    """Decoded text with the CRLF of the wire turned back into newlines."""
    return part.get_content().replace("\r\n", "\n")


def rfc2047_display_name(raw: bytes) -> str:
    """The From display name decoded strictly by RFC 2047 (whitespace between words dropped).

    Python's display-name parser keeps the space between two encoded words, which RFC 2047
    section 6.2 says to ignore; Thunderbird, Gmail and Outlook ignore it.
    """
    message = email.message_from_bytes(raw, policy=email_policy.compat32)
    phrase = re.sub(r"\s*<[^<>]*>\s*$", "", message["From"])
    return str(make_header(decode_header(phrase))).strip('"')


def assert_wire_format(raw: bytes) -> None:
    """CRLF everywhere, no bare CR or LF, no line over 998 octets, 7-bit clean."""
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert raw.isascii()


# --- strip_reply_prefixes ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Printer", "Printer"),
        ("RE: Printer", "Printer"),
        ("re:Printer", "Printer"),
        ("Re : Printer", "Printer"),
        ("Re[2]: Printer", "Printer"),
        ("Re(3): Printer", "Printer"),
        ("RE^2: Printer", "Printer"),
        ("Fwd: Printer", "Printer"),
        ("FW: Printer", "Printer"),
        ("AW: Drucker", "Drucker"),
        ("WG: AW: Drucker", "Drucker"),
        ("SV: Skrivare", "Skrivare"),
        ("VS: Tulostin", "Tulostin"),
        ("Antw: Printer", "Printer"),
        ("RIF: Stampante", "Stampante"),
        ("Odp: Drukarka", "Drukarka"),
        ("Ответ: Принтер", "Принтер"),
        ("ОТВ: Принтер", "Принтер"),
        ("На: Принтер", "Принтер"),
        ("Пересл: Принтер", "Принтер"),
        ("Fwd: Пересл: Принтер", "Принтер"),
        ("Відп: Принтер", "Принтер"),
        ("回复：打印机", "打印机"),
        ("Re: Fwd: RE: Printer", "Printer"),
        ("Re:Re:Re: Printer", "Printer"),
        ("  Re:   Printer", "Printer"),
        ("Re: ", ""),
    ],
)
def test_strip_reply_prefixes_removes_every_leading_prefix(subject: str, expected: str) -> None:
    assert strip_reply_prefixes(subject) == expected


@pytest.mark.parametrize(
    "subject",
    [
        "Printer on fire",
        "Regarding: the printer",
        "Refund: order 12",
        "Reply needed",
        "Re",
        "Printer Re: fire",
        "SVN: commit failed",
        "Наш сервер: упал",
        "Отвертка: нужна",
        "Forward planning",
    ],
)
def test_strip_reply_prefixes_keeps_subjects_without_a_prefix(subject: str) -> None:
    assert strip_reply_prefixes(subject) == subject


# --- ticket tags ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: [#123] Printer", [123]),
        ("[#1] [#2] [#1] Printer", [1, 2]),
        ("Printer [#42]", [42]),
        ("[[#5]] Printer", [5]),
        ("Printer", []),
        ("#123 Printer", []),
        ("[#] Printer", []),
        ("[#12a] Printer", []),
        ("[# 12] Printer", []),
        ("[#" + "9" * 30 + "] Printer", []),
    ],
)
def test_find_ticket_tags_default_format(subject: str, expected: list[int]) -> None:
    assert find_ticket_tags(subject) == expected


def test_find_ticket_tags_with_words_in_the_format_ignores_case_and_spacing() -> None:
    tag_format = "[Ticket #{id}]"
    assert find_ticket_tags("Re: [Ticket #77] Printer", tag_format) == [77]
    assert find_ticket_tags("Re: [ticket  #78] Printer", tag_format) == [78]
    assert find_ticket_tags("Re: [#77] Printer", tag_format) == []


def test_find_ticket_tags_escapes_regex_metacharacters_in_the_format() -> None:
    tag_format = "(#{id})"
    assert find_ticket_tags("Re: (#5) Printer", tag_format) == [5]
    assert find_ticket_tags("Re: #5 Printer", tag_format) == []
    assert find_ticket_tags("Re: (#5 Printer", tag_format) == []
    assert find_ticket_tags("Re: (x5) Printer", tag_format) == []
    assert find_ticket_tags("a.b*c 7 +?", "a.b*c {id} +?") == [7]
    assert find_ticket_tags("axbbc 7 +?", "a.b*c {id} +?") == []


def test_find_ticket_tags_with_bare_id_needs_a_whole_number() -> None:
    assert find_ticket_tags("Order 42 lost", "{id}") == [42]
    assert find_ticket_tags("Invoice42 lost", "{id}") == []
    assert find_ticket_tags("42x lost", "{id}") == []
    assert find_ticket_tags("T5X", "T{id}X") == [5]


def test_find_ticket_tags_does_not_read_a_prefix_of_a_longer_number() -> None:
    assert find_ticket_tags("Ticket 12345", "Ticket {id}") == [12345]
    assert find_ticket_tags("#12345", "#{id}") == [12345]


@pytest.mark.parametrize(
    "tag_format", ["[#]", "[#{id}] [#{id}]", "[#{ID}]", "[#{id}]\r\nBcc: x", ""]
)
def test_tag_format_must_hold_id_once_on_one_line(tag_format: str) -> None:
    with pytest.raises(ValidationError):
        find_ticket_tags("[#1] x", tag_format)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("[#12] Printer", "Printer"),
        ("Printer [#12]", "Printer"),
        ("Re: [#12] [#13] Printer", "Re: Printer"),
        ("Printer [#12] on fire", "Printer on fire"),
        ("[#12a] Printer", "[#12a] Printer"),
    ],
)
def test_strip_ticket_tags(subject: str, expected: str) -> None:
    assert strip_ticket_tags(subject) == expected


def test_strip_ticket_tags_custom_format_leaves_other_formats() -> None:
    assert strip_ticket_tags("[Ticket #9] [#9] Printer", "[Ticket #{id}]") == "[#9] Printer"


# --- reply_subject ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "ticket_id", "expected"),
    [
        ("Printer on fire", 123, "Re: [#123] Printer on fire"),
        ("Re: RE: Fwd: [#12] [#12] x", 12, "Re: [#12] x"),
        ("[#12] Re: AW: [#12] Ответ: Принтер", 12, "Re: [#12] Принтер"),
        ("Ответ: Принтер горит", 7, "Re: [#7] Принтер горит"),
        ("Re: [#99] Moved ticket", 5, "Re: [#5] Moved ticket"),
        ("", 123, "Re: [#123] (no subject)"),
        ("   ", 123, "Re: [#123] (no subject)"),
        ("Re: Fwd:", 123, "Re: [#123] (no subject)"),
        ("Re: [#123]", 123, "Re: [#123] (no subject)"),
        ("Printer\r\n\ton fire", 1, "Re: [#1] Printer on fire"),
    ],
)
def test_reply_subject(original: str, ticket_id: int, expected: str) -> None:
    assert reply_subject(original, ticket_id) == expected


def test_reply_subject_with_custom_formats() -> None:
    assert (
        reply_subject("RE: [Ticket #4] [Ticket #4] Printer", 4, "[Ticket #{id}]")
        == "Re: [Ticket #4] Printer"
    )
    assert reply_subject("Fwd: (#8) Printer (#8)", 8, "(#{id})") == "Re: (#8) Printer"


@pytest.mark.parametrize(
    "original",
    ["Printer", "Re: [#3] AW: Printer", "", "[#3]", "Fwd: Пересл: [#3] Re: Принтер", "Re: Re"],
)
def test_reply_subject_is_stable_when_replying_to_a_reply(original: str) -> None:
    first = reply_subject(original, 3)
    assert reply_subject(first, 3) == first
    assert find_ticket_tags(first) == [3]
    assert len(re.findall(r"(?i)\bre\s*:", first)) == 1


def test_rendered_tags_are_found_again() -> None:
    for tag_format in (DEFAULT_TAG_FORMAT, "[Ticket #{id}]", "(#{id})", "{id}", "Ticket {id}:"):
        assert find_ticket_tags(reply_subject("Printer", 31, tag_format), tag_format) == [31]


@pytest.mark.parametrize("ticket_id", [-1, True, "12"])
def test_ticket_id_must_be_a_non_negative_int(ticket_id: object) -> None:
    with pytest.raises(ValidationError):
        reply_subject("Printer", ticket_id)  # type: ignore[arg-type]


# --- sanitize_header_value ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Printer\r\nBcc: evil@attacker.example", "Printer Bcc: evil@attacker.example"),
        ("a\rb\nc\x00d", "a b c d"),
        ("a\x1bb\x7fc\x85d\x9be", "a b c d e"),
        ("a\u2028b\u2029c", "a b c"),
        ("  a \t  b  ", "a b"),
        ("a\u00a0b", "a\u00a0b"),
        ("Служба поддержки", "Служба поддержки"),
        ("bad \udcff byte", "bad \ufffd byte"),
        ("", ""),
    ],
)
def test_sanitize_header_value(value: str, expected: str) -> None:
    assert sanitize_header_value(value) == expected


# --- addresses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "",
        "ivan",
        "@example.org",
        "ivan@",
        "ivan@example.org\r\nBcc: evil@attacker.example",
        "ivan@example.org\nX-Evil: 1",
        "ivan@example.org, evil@attacker.example",
        "ivan@example.org;evil@attacker.example",
        "Ivan <ivan@example.org>",
        "<ivan@example.org>",
        "ivan@example.org>",
        "ivan@evil@example.org",
        "ivan petrov@example.org",
        '"ivan petrov"@example.org',
        "ivan..petrov@example.org",
        ".ivan@example.org",
        "ivan@-example.org",
        "ivan@example..org",
        "ivan@example.org.",
        "ivan@exa mple.org",
        "ivan@exa_mple.org",
        "иван@example.org",
        "=?utf-8?q?a=0D=0Ab?=@example.org",
        "x" * 65 + "@example.org",
        "ivan@" + "a" * 64 + ".org",
    ],
)
def test_invalid_addresses_are_refused_everywhere(address: str) -> None:
    with pytest.raises(ValidationError):
        validate_address(address)
    with pytest.raises(ValidationError):
        make_mail(to=[address])
    with pytest.raises(ValidationError):
        make_mail(cc=[address])
    with pytest.raises(ValidationError):
        make_mail(from_address=address)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (" Ivan.Petrov+help@Example.ORG ", "Ivan.Petrov+help@example.org"),
        ("user@пример.рф", "user@xn--e1afmkfd.xn--p1ai"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("root@localhost", "root@localhost"),
    ],
)
def test_valid_addresses_are_normalized(address: str, expected: str) -> None:
    assert validate_address(address) == expected
    assert make_mail(to=[address]).to == (expected,)


def test_address_list_given_as_a_string_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        make_mail(to="ivan@example.org")


def test_a_mail_needs_a_recipient() -> None:
    with pytest.raises(ValidationError):
        make_mail(to=[], cc=[])
    assert envelope_recipients(make_mail(to=[], cc=["olga@example.org"])) == ["olga@example.org"]


def test_envelope_recipients_dedupe_case_insensitively_in_order() -> None:
    mail = make_mail(
        to=["ivan@example.org", "Olga@Example.org", "IVAN@example.org"],
        cc=["olga@example.org", "petr@example.org", "Petr@example.org"],
    )
    assert envelope_recipients(mail) == ["ivan@example.org", "Olga@example.org", "petr@example.org"]
    message = parse(build(mail))
    assert [a.addr_spec for a in message["To"].addresses] == [
        "ivan@example.org",
        "Olga@example.org",
    ]
    assert [a.addr_spec for a in message["Cc"].addresses] == ["petr@example.org"]
    assert "Bcc" not in message


# --- header injection -----------------------------------------------------------------------


def test_crlf_in_subject_cannot_add_a_header() -> None:
    mail = make_mail(subject="Printer\r\nBcc: evil@attacker.example\r\n\r\nbody")
    message = parse(build(mail))
    assert "Bcc" not in message
    assert message["Subject"] == "Printer Bcc: evil@attacker.example body"
    assert envelope_recipients(mail) == ["ivan@example.org"]


def test_encoded_word_in_subject_stays_literal_text() -> None:
    raw = build(make_mail(subject=ENCODED_INJECTION))
    message = parse(raw)
    assert "Bcc" not in message
    assert message["Subject"] == ENCODED_INJECTION
    assert b"Bcc" not in header_block(raw)


def test_encoded_word_in_display_name_stays_literal_text() -> None:
    raw = build(make_mail(from_name=ENCODED_INJECTION))
    message = parse(raw)
    assert "Bcc" not in message
    (sender,) = message["From"].addresses
    assert sender.addr_spec == "support@example.com"
    assert rfc2047_display_name(raw) == ENCODED_INJECTION
    # Python's display-name parser puts a space between encoded words (see above).
    assert sender.display_name.replace(" ", "") == ENCODED_INJECTION


def test_encoded_word_in_extra_header_value_stays_literal_text() -> None:
    message = parse(build(make_mail(extra_headers={"X-Note": ENCODED_INJECTION})))
    assert "Bcc" not in message
    assert message["X-Note"] == ENCODED_INJECTION


@pytest.mark.parametrize(
    "display_name",
    [
        "Support <evil@attacker.example>, other@attacker.example",
        'Support" <evil@attacker.example>, "x',
        "Служба <evil@attacker.example>, other@attacker.example",
        'Ivan "The" \\ Terrible',
        "Support\r\nBcc: evil@attacker.example",
        "Name: (comment) x; y",
    ],
)
def test_display_name_trickery_adds_no_address(display_name: str) -> None:
    raw = build(make_mail(from_name=display_name))
    message = parse(raw)
    assert "Bcc" not in message
    (sender,) = message["From"].addresses
    assert sender.addr_spec == "support@example.com"
    assert sanitize_header_value(sender.display_name) == sanitize_header_value(display_name)
    if "\\" not in display_name and '"' not in display_name:
        assert rfc2047_display_name(raw) == sanitize_header_value(display_name)


@pytest.mark.parametrize(
    "name",
    ["X Bad", "X-Colon:", "X-\r\nBcc", "", "Х-Кириллица", "X-" + "a" * 80],
)
def test_invalid_extra_header_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        make_mail(extra_headers={name: "1"})


@pytest.mark.parametrize(
    "name", ["Bcc", "to", "Subject", "Message-ID", "Content-Type", "MIME-Version", "Reply-To"]
)
def test_extra_headers_cannot_override_managed_headers(name: str) -> None:
    with pytest.raises(ValidationError):
        make_mail(extra_headers={name: "x"})


def test_extra_headers_are_written_with_values_cleaned() -> None:
    mail = make_mail(extra_headers={"X-Eddymail-Ticket": "123", "X-Note": "a\r\nBcc: b@c.d"})
    message = parse(build(mail))
    assert message["X-Eddymail-Ticket"] == "123"
    assert message["X-Note"] == "a Bcc: b@c.d"
    assert "Bcc" not in message


# --- round trips through the parser ---------------------------------------------------------


@pytest.mark.parametrize(
    "subject",
    [
        "Printer on fire",
        "Принтер горит, помогите!",
        "Re: [#123] Служба поддержки — «срочно» 🔥",
        "What is x=? and y?=",
        "Принтер горит " * 40 + "конец",
        "word " * 120,
        "https://example.org/" + "a" * 300 + " trailing",
        "Ж" * 500,
        "日本語の件名と emoji 👍🏽 mixed with ASCII",
        '"quoted" (comment) <angle> ; , : \\',
    ],
)
def test_subject_round_trips_and_folds(subject: str) -> None:
    raw = build(make_mail(subject=subject))
    assert_wire_format(raw)
    assert parse(raw)["Subject"] == sanitize_header_value(subject)
    assert max(len(line) for line in header_block(raw).split(b"\r\n")) <= 78


@pytest.mark.parametrize(
    "name",
    ["Служба поддержки", "Иванов, Иван", "Support Team", "O'Brien & Co.", "Ёжик 🦔"],
)
def test_display_name_round_trips_exactly(name: str) -> None:
    raw = build(make_mail(from_name=name))
    assert_wire_format(raw)
    (sender,) = parse(raw)["From"].addresses
    assert sender.display_name == name
    assert sender.addr_spec == "support@example.com"


@pytest.mark.parametrize(
    "name",
    [
        "Служба технической поддержки ООО «Ромашка»",
        "Служба " * 30,
        "Отдел обслуживания клиентов и сопровождения",
        "Очень-длинное-название-отдела-без-единого-пробела-вообще",
    ],
)
def test_long_display_name_splits_at_spaces(name: str) -> None:
    raw = build(make_mail(from_name=name))
    assert_wire_format(raw)
    assert max(len(line) for line in header_block(raw).split(b"\r\n")) <= 78
    assert rfc2047_display_name(raw) == sanitize_header_value(name)
    (sender,) = parse(raw)["From"].addresses
    assert sender.addr_spec == "support@example.com"
    if " " in name:
        # Python adds a space between encoded words; splitting after a space keeps words whole.
        assert sanitize_header_value(sender.display_name) == sanitize_header_value(name)


def test_empty_display_name_gives_a_bare_address() -> None:
    raw = build(make_mail(from_name=""))
    assert b"\r\nFrom: support@example.com\r\n" in b"\r\n" + raw
    assert parse(raw)["From"].addresses[0].addr_spec == "support@example.com"


def test_ascii_short_body_is_7bit() -> None:
    message = parse(build(make_mail(body_text="Hello,\nyour printer is fixed.\n")))
    assert message["Content-Transfer-Encoding"] == "7bit"
    assert message.get_content_charset() == "utf-8"
    assert text_of(message) == "Hello,\nyour printer is fixed.\n"


@pytest.mark.parametrize(
    "body",
    [
        "Здравствуйте!\nПринтер починили.\n",
        "x" * 5000 + "\n",
        "Привет " * 1000 + "\n",
        "line one\n\n" + "y" * 998 + "\nend",
        ".\n.leading dot\nFrom the start\n",
        "trailing spaces   \nand tabs\t\n",
    ],
)
def test_body_round_trips_without_8bit_or_long_lines(body: str) -> None:
    raw = build(make_mail(body_text=body))
    assert_wire_format(raw)
    message = parse(raw)
    assert message["Content-Transfer-Encoding"] in ("7bit", "quoted-printable", "base64")
    expected = body if body.endswith("\n") else body + "\n"
    assert text_of(message) == expected


def test_body_without_nul_or_lone_surrogates() -> None:
    mail = make_mail(body_text="a\x00b \udcff c\n")
    assert mail.body_text == "ab \ufffd c\n"
    assert text_of(parse(build(mail))) == "ab \ufffd c\n"


def test_references_given_as_a_string_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        make_mail(references="a@example.org")


def test_crlf_in_body_becomes_one_line_break() -> None:
    message = parse(build(make_mail(body_text="one\r\ntwo\r\n")))
    assert text_of(message) == "one\ntwo\n"


def test_full_message_round_trip_with_cyrillic() -> None:
    mail = make_mail(
        from_name="Служба поддержки",
        to=["ivan@example.org"],
        cc=["olga@пример.рф"],
        subject="Re: [#5] Принтер горит",
        body_text="Здравствуйте, Иван!\n\nМы заменили картридж.\n",
    )
    raw = build(mail)
    assert_wire_format(raw)
    message = parse(raw)
    assert message["From"].addresses[0].display_name == "Служба поддержки"
    assert message["Cc"].addresses[0].addr_spec == "olga@xn--e1afmkfd.xn--p1ai"
    assert message["Subject"] == "Re: [#5] Принтер горит"
    assert text_of(message) == mail.body_text
    assert message["MIME-Version"] == "1.0"


# --- attachments ----------------------------------------------------------------------------


def test_attachments_keep_bytes_and_non_ascii_names() -> None:
    binary = bytes(range(256)) * 40
    mail = make_mail(
        body_text="См. вложения.\n",
        attachments=[
            OutgoingAttachment("отчёт за март.pdf", "application/pdf", binary),
            OutgoingAttachment("notes.txt", "text/plain", b"line\r\nbare\rcr\n\x00end"),
            OutgoingAttachment("Ж" * 150 + ".bin", "application/octet-stream", b"\xff"),
        ],
    )
    raw = build(mail)
    assert_wire_format(raw)
    message = parse(raw)
    assert message.get_content_type() == "multipart/mixed"
    body = message.get_body(("plain",))
    assert body is not None and text_of(body) == "См. вложения.\n"
    attachments = list(message.iter_attachments())
    assert [part.get_filename() for part in attachments] == [
        "отчёт за март.pdf",
        "notes.txt",
        "Ж" * 150 + ".bin",
    ]
    assert [part.get_content_type() for part in attachments] == [
        "application/pdf",
        "text/plain",
        "application/octet-stream",
    ]
    assert attachments[0].get_payload(decode=True) == binary
    assert attachments[1].get_payload(decode=True) == b"line\r\nbare\rcr\n\x00end"
    assert attachments[2].get_payload(decode=True) == b"\xff"
    assert attachments[0].get_param("name") == "отчёт за март.pdf"
    assert b"filename*" in raw


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ivan\\report.txt", "report.txt"),
        ("evil\r\nContent-Type: text/html.txt", "html.txt"),
        ("evil\r\nX-Evil: 1.txt", "evil X-Evil: 1.txt"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ("", "attachment"),
        ("..", "attachment"),
        ("a" * 300 + ".pdf", "a" * 196 + ".pdf"),
    ],
)
def test_attachment_names_are_made_safe(filename: str, expected: str) -> None:
    attachment = OutgoingAttachment(filename, "application/octet-stream", b"x")
    assert attachment.filename == expected
    message = parse(build(make_mail(attachments=[attachment])))
    assert [part.get_filename() for part in message.iter_attachments()] == [expected]


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("Image/PNG", "image/png"),
        ("text/html; charset=evil\r\nX-Evil: 1", "application/octet-stream"),
        ("nonsense", "application/octet-stream"),
        ("message/rfc822", "application/octet-stream"),
        ("multipart/mixed", "application/octet-stream"),
        ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ],
)  # fmt: skip
def test_attachment_media_types_are_checked(content_type: str, expected: str) -> None:
    attachment = OutgoingAttachment("f", content_type, b"data")
    assert attachment.content_type == expected
    message = parse(build(make_mail(attachments=[attachment])))
    assert "X-Evil" not in message
    (part,) = message.iter_attachments()
    assert part.get_content_type() == expected
    assert part.get_payload(decode=True) == b"data"


def test_attachment_data_is_not_in_repr() -> None:
    assert "secret-bytes" not in repr(OutgoingAttachment("a.txt", "text/plain", b"secret-bytes"))


# --- automatic mail -------------------------------------------------------------------------


def test_automatic_headers_only_on_automatic_mail() -> None:
    automatic = parse(build(make_mail(automatic=True)))
    assert automatic["Auto-Submitted"] == "auto-replied"
    assert automatic["X-Auto-Response-Suppress"] == "All"
    manual = parse(build(make_mail()))
    assert "Auto-Submitted" not in manual
    assert "X-Auto-Response-Suppress" not in manual


# --- Message-ID, threading headers, Date ----------------------------------------------------


def test_make_message_id_is_unique_and_unguessable() -> None:
    ids = {make_message_id("example.com") for _ in range(2000)}
    assert len(ids) == 2000
    for message_id in list(ids)[:50]:
        match = re.fullmatch(r"eddymail\.([0-9a-f]+)@example\.com", message_id)
        assert match is not None
        assert len(match.group(1)) * 4 >= 128


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("Example.COM", "example.com"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
        ("support@example.org", "example.org"),
        ("bad domain!", "localhost.localdomain"),
        ("example.com\r\nBcc: x", "localhost.localdomain"),
        ("", "localhost.localdomain"),
    ],
)
def test_make_message_id_domain(domain: str, expected: str) -> None:
    message_id = make_message_id(domain)
    assert message_id.rpartition("@")[2] == expected
    assert "<" not in message_id and ">" not in message_id


def test_message_id_is_written_in_brackets_on_the_header_line() -> None:
    message_id = make_message_id("xn--e1afmkfd.xn--p1ai")
    raw = build(make_mail(), message_id=message_id)
    assert f"\r\nMessage-ID: <{message_id}>\r\n".encode() in raw
    assert parse(raw)["Message-ID"] == f"<{message_id}>"


@pytest.mark.parametrize("message_id", ["", "a b@c", "a@b\r\nBcc: x", "<>", "ид@пример"])
def test_unusable_message_id_is_refused(message_id: str) -> None:
    with pytest.raises(ValidationError):
        build(make_mail(), message_id=message_id)


def test_threading_headers() -> None:
    mail = make_mail(in_reply_to="<b@example.org>", references=["a@example.org", "<b@example.org>"])
    assert mail.in_reply_to == "b@example.org"
    raw = build(mail)
    assert b"\r\nIn-Reply-To: <b@example.org>\r\n" in raw
    assert b"\r\nReferences: <a@example.org> <b@example.org>\r\n" in raw


def test_in_reply_to_is_appended_to_references() -> None:
    message = parse(build(make_mail(in_reply_to="b@example.org", references=["a@example.org"])))
    assert message["References"] == "<a@example.org> <b@example.org>"
    message = parse(build(make_mail(in_reply_to="b@example.org")))
    assert message["References"] == "<b@example.org>"


def test_no_threading_headers_for_a_new_mail() -> None:
    message = parse(build(make_mail()))
    assert "In-Reply-To" not in message
    assert "References" not in message


def test_unusable_references_from_foreign_mail_are_dropped() -> None:
    mail = make_mail(
        in_reply_to="bad id@example.org",
        references=["a@x", "has space@x", "crlf@x\r\nBcc: evil@x", "a@x", "ok@x", "x" * 1000],
    )
    assert mail.in_reply_to is None
    assert mail.references == ("a@x", "ok@x")
    message = parse(build(mail))
    assert "Bcc" not in message
    assert message["References"] == "<a@x> <ok@x>"


def test_long_references_are_folded_not_encoded_and_trimmed() -> None:
    references = [f"{'r' * 70}.{number}@example.org" for number in range(40)]
    raw = build(make_mail(in_reply_to=references[-1], references=references))
    assert_wire_format(raw)
    headers = header_block(raw)
    assert b"=?" not in headers
    message = parse(raw)
    written = message["References"].split()
    assert len(written) == 20
    assert written[0] == f"<{references[0]}>"
    assert written[1:] == [f"<{reference}>" for reference in references[-19:]]
    assert message["In-Reply-To"] == f"<{references[-1]}>"


def test_date_header() -> None:
    moscow = timezone(timedelta(hours=3))
    when = datetime(2024, 3, 1, 12, 30, 5, tzinfo=moscow)
    assert parse(build(make_mail(), date=when))["Date"].datetime == when
    naive = datetime(2024, 3, 1, 12, 30, 5)
    assert parse(build(make_mail(), date=naive))["Date"].datetime == naive.replace(tzinfo=UTC)
    before = datetime.now(UTC).replace(microsecond=0)
    written = parse(build(make_mail()))["Date"].datetime
    assert before <= written <= datetime.now(UTC)


def test_header_lines_stay_short_even_with_everything_long() -> None:
    mail = make_mail(
        from_name="Служба технической поддержки очень большой компании " * 3,
        to=[f"user{number}@{'sub.' * 10}example.org" for number in range(10)],
        cc=[f"copy{number}@example.org" for number in range(10)],
        subject="Очень длинная тема письма " * 20,
        extra_headers={"X-" + "Long-Header-Name" * 3: "значение " * 50},
        in_reply_to="parent@example.org",
        automatic=True,
    )
    raw = build(mail)
    assert_wire_format(raw)
    assert max(len(line) for line in header_block(raw).split(b"\r\n")) <= 78
    message = parse(raw)
    assert len(message["To"].addresses) == 10
    assert len(message["Cc"].addresses) == 10
    assert message["Subject"] == mail.subject
    name = "X-" + "Long-Header-Name" * 3
    assert message[name] == mail.extra_headers[name]


@pytest.mark.parametrize("value", ["значение " * 20, "v" * 300, "short"])
def test_longest_header_name_still_round_trips(value: str) -> None:
    name = "X-" + "N" * 74
    raw = build(make_mail(extra_headers={name: value}))
    assert_wire_format(raw)
    assert parse(raw)[name] == sanitize_header_value(value)


def test_bidi_overrides_are_dropped_from_header_values():
    assert sanitize_header_value("Re: \u202eevil\u202c text\u2066x\u2069") == "Re: evil textx"
