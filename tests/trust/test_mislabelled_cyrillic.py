"""Issue 11, parsing fidelity: Cyrillic text sent under a wrong single-byte label.

A mail client with a Western default labels windows-1251 or koi8-r text as latin-1 or
windows-1252; another sends windows-1251 as koi8-r (or back). Every byte string decodes in a
single-byte charset, so nothing fails: the text just reads "Çäðàâñòâóéòå" or
"гДПЮБЯРБСИРЕ". A careful reader recognises whole words of Cyrillic letters and the case
pattern of the wrong Cyrillic charset; Western text with accents stays as labelled.
"""

from __future__ import annotations

import pytest

from eddymail.mail.message.parse import parse_message

CYRILLIC = {
    "russian": "Здравствуйте, у меня не работает принтер. Помогите, пожалуйста!",
    "ukrainian": "Доброго дня! Не можу відкрити рахунок за березень, допоможіть.",
    "short": "Привет, это Аня",
    "shouting": "ПРИНТЕР НЕ РАБОТАЕТ УЖЕ ТРЕТИЙ ДЕНЬ",
    "mixed with latin": "Счёт INV-2026-03 за март не пришёл, PDF пустой. Спасибо, Anna",
}
LABELS_BY_ENCODING = {
    "cp1251": ["iso-8859-1", "windows-1252", "iso-8859-15", "koi8-r"],
    "koi8-r": ["iso-8859-1", "windows-1252", "windows-1251"],
}
WESTERN = {
    "french": "Bonjour, je n'ai pas reçu la facture de mars. Merci d'avance, Élodie",
    "german": "Grüße aus München: die Rechnung für März fehlt. Schöne Woche!",
    "spanish": "¿Dónde está la factura? Gracias, José Muñoz",
}


def mail(text: bytes, label: str) -> bytes:
    return (b"From: a@customer.example\r\nTo: help@example.test\r\nSubject: s\r\n"
            b"Content-Type: text/plain; charset=" + label.encode() + b"\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\n" + text + b"\r\n")


CASES = [(name, encoding, label) for name in CYRILLIC
         for encoding, labels in LABELS_BY_ENCODING.items() for label in labels
         if not (encoding == "koi8-r" and name == "ukrainian")]  # і, ї: not in koi8-r


@pytest.mark.parametrize(("name", "encoding", "label"), CASES,
                         ids=[f"{n}-{e}-as-{lbl}" for n, e, lbl in CASES])
def test_cyrillic_under_a_wrong_label_is_read_as_cyrillic(name, encoding, label):
    text = CYRILLIC[name]
    parsed = parse_message(mail(text.encode(encoding), label))
    assert parsed.body_text.strip() == text


@pytest.mark.parametrize("name", CYRILLIC)
@pytest.mark.parametrize("encoding", ["cp1251", "koi8-r"])
def test_rightly_labelled_cyrillic_stays_as_it_is(name, encoding):
    if encoding == "koi8-r" and name == "ukrainian":
        pytest.skip("koi8-r has no Ukrainian letters")
    text = CYRILLIC[name]
    label = "windows-1251" if encoding == "cp1251" else "koi8-r"
    assert parse_message(mail(text.encode(encoding), label)).body_text.strip() == text


@pytest.mark.parametrize("name", WESTERN)
@pytest.mark.parametrize("label", ["iso-8859-1", "windows-1252"])
def test_western_text_keeps_its_label(name, label):
    text = WESTERN[name]
    assert parse_message(mail(text.encode("cp1252"), label)).body_text.strip() == text
