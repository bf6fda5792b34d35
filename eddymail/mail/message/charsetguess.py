"""Guessing the charset of 8-bit text that came without a usable label.

A small Cyrillic detector goes first: Russian mail in windows-1251 or koi8-r is common for
our users, and charset-normalizer is unreliable on short Russian text (it mistakes it for
Big5). charset-normalizer decides the rest, with ties broken towards the charsets our users
send.
"""

from __future__ import annotations

import codecs
import math

from eddymail.patterns import LazyPattern

# Detection looks at the start of a text only; it decides for the whole.
DETECTION_SAMPLE = 64 * 1024
_SINGLE_BYTE_CYRILLIC = ("cp1251", "koi8_r")
_CYRILLIC_FAMILY = {
    "cp1251", "koi8_r", "koi8_u", "mac_cyrillic", "cp866", "cp1125", "iso8859_5", "ptcp154",
    "kz1048", "cp855",
}  # fmt: skip
# When charset-normalizer finds several charsets equally plausible, pick the one our users
# are likely to send; its own tie-break prefers e.g. cp1250 for French ("crème" -> "crčme").
_PREFERRED = ("utf_8", "cp1252", "cp1251", "koi8_r", "gb18030", "cp932", "euc_jp", "cp949",
              "big5", "iso8859_2", "cp1250")  # fmt: skip
# Russian (plus Ukrainian) letter frequencies in percent; scores how plausible a decoding is.
_LETTER_FREQUENCY = {
    "о": 10.97, "е": 8.45, "а": 8.01, "и": 7.35, "н": 6.70, "т": 6.26, "с": 5.47, "р": 4.73,
    "в": 4.54, "л": 4.40, "к": 3.49, "м": 3.21, "д": 2.98, "п": 2.81, "у": 2.62, "я": 2.01,
    "ы": 1.90, "ь": 1.74, "г": 1.70, "з": 1.65, "б": 1.59, "ч": 1.44, "й": 1.21, "х": 0.97,
    "ж": 0.94, "ш": 0.73, "ю": 0.64, "ц": 0.48, "щ": 0.36, "э": 0.32, "ф": 0.26, "ъ": 0.04,
    "ё": 0.04, "і": 1.0, "ї": 0.3, "є": 0.3, "ґ": 0.05,
}  # fmt: skip
_LOG_FREQUENCY = {letter: math.log(share) for letter, share in _LETTER_FREQUENCY.items()}
_BELOW_0X80 = bytes(range(0x80))
_NOT_LETTER = bytes(byte for byte in range(0xC0) if byte not in (0xA3, 0xA8, 0xB3, 0xB8))
# Letters are 0xC0-0xFF in both charsets, plus Ё/ё (0xA8/0xB8 in cp1251, 0xB3/0xA3 in koi8-r).
# A run of them not touching an ASCII letter is a whole word; in Latin text accented letters
# sit inside ASCII words ("M\xfcnchen").
_WHOLE_WORD = LazyPattern(rb"(?<![A-Za-z])[\xc0-\xff\xa3\xa8\xb3\xb8]+(?![A-Za-z])")


def guess_charset(data: bytes) -> str | None:
    """Guess the charset of 8-bit bytes that are not UTF-8; None when nothing is plausible."""
    sample = data[:DETECTION_SAMPLE]
    cyrillic = _guess_single_byte_cyrillic(sample)
    if cyrillic is not None:
        return cyrillic
    # Imported here: most mail declares its charset truthfully (or is UTF-8) and never
    # gets this far, so a run need not load the detector and its tables.
    import charset_normalizer

    try:
        matches = charset_normalizer.from_bytes(sample)
    except Exception:  # the detector is third-party code fed hostile bytes
        return None
    best = matches.best()
    if best is None:
        return None
    ties = [m for m in matches if m.chaos <= best.chaos + 0.01]
    chosen = best.encoding
    for preferred in _PREFERRED:
        if any(preferred == m.encoding or preferred in m.could_be_from_charset for m in ties):
            chosen = preferred
            break
    if chosen in _CYRILLIC_FAMILY:
        return _best_cyrillic(sample)
    return chosen


# Labels that Cyrillic single-byte text is sent under by mistake: a Western default of the
# mail client, or the other Cyrillic charset (windows-1251 sent as koi8-r and back).
_CYRILLIC_SUSPECTS = frozenset(codecs.lookup(name).name for name in (
    "cp1252", "latin_1", "iso8859_15", "cp1251", "koi8_r"))


def mislabelled_cyrillic(data: bytes, codec: str) -> str | None:
    """cp1251 or koi8-r when text labelled ``codec`` is really Cyrillic in the other one.

    Every byte string decodes in a single-byte charset, so a wrong label never fails: the
    bytes must look like whole words of Cyrillic letters (``_guess_single_byte_cyrillic``:
    Western text has accented letters inside ASCII words), and the text decoded by the label
    must read worse than by the detected charset (a koi8-r text read as windows-1251 comes
    out in the wrong case: "гДПЮБЯРБСИРЕ").
    """
    name = codecs.lookup(codec).name
    if name not in _CYRILLIC_SUSPECTS or data.isascii():
        return None
    sample = data[:DETECTION_SAMPLE]
    detected = _guess_single_byte_cyrillic(sample)
    if detected is None or codecs.lookup(detected).name == name:
        return None
    if _plausibility(sample.decode(codec, "replace")) >= \
            _plausibility(sample.decode(detected, "replace")):
        return None
    return detected


def _guess_single_byte_cyrillic(sample: bytes) -> str | None:
    """cp1251 or koi8-r when the 8-bit bytes look like words of a Cyrillic single-byte text.

    In both charsets the letters are bytes 0xC0-0xFF and whole words are made of them; Latin
    text has accented letters inside ASCII words, CJK text many bytes below 0xC0.
    """
    high = len(sample.translate(None, _BELOW_0X80))
    letters = len(sample.translate(None, _NOT_LETTER))
    if high == 0 or letters < 0.85 * high:
        return None
    in_words = sum(len(word) for word in _WHOLE_WORD.findall(sample))
    if in_words < 0.6 * letters:
        return None
    charset = _best_cyrillic(sample)
    text = sample.decode(charset, "replace")
    return charset if _case_anomalies(text) <= 0.2 * max(1, _letter_count(text)) else None


def _best_cyrillic(sample: bytes) -> str:
    return max(
        _SINGLE_BYTE_CYRILLIC, key=lambda charset: _plausibility(sample.decode(charset, "replace"))
    )


def _plausibility(text: str) -> float:
    """Mean log letter frequency minus a penalty for "wORD" case patterns of a wrong charset."""
    letters = _letter_count(text)
    if not letters:
        return -math.inf
    total = sum(_LOG_FREQUENCY.get(char.lower(), -6.0) for char in text if char.isalpha())
    return (total - 4.0 * _case_anomalies(text)) / letters


def _letter_count(text: str) -> int:
    return sum(1 for char in text if char.isalpha())


def _case_anomalies(text: str) -> int:
    """How often an upper-case letter follows a lower-case one inside a word."""
    anomalies = 0
    previous_lower = False
    for char in text:
        if char.isupper() and previous_lower:
            anomalies += 1
        previous_lower = char.islower()
    return anomalies
