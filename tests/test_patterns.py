"""eddymail.patterns.LazyPattern: compiled on first use, then the same answers as re.Pattern."""

from __future__ import annotations

import re

import pytest

from eddymail.patterns import LazyPattern


def test_nothing_is_compiled_until_the_pattern_is_used(monkeypatch):
    compiled: list[str] = []
    compile_now = re.compile
    monkeypatch.setattr(re, "compile", lambda source, flags=0: (
        compiled.append(source), compile_now(source, flags))[1])
    words = LazyPattern(r"\w+")
    assert compiled == []
    assert words.findall("two words") == ["two", "words"]
    assert words.search("again") is not None  # the second use compiles nothing new
    assert compiled == [r"\w+"]


@pytest.mark.parametrize(("source", "flags", "text", "replacement"), [
    (r"(?P<word>[a-z]+)(\d*)", re.IGNORECASE, "Printer42 jammed, tray 7 EMPTY", r"<\g<word>>"),
    (r"^\s*5\d\d\b", 0, "  550 mailbox unavailable\n451 later", "5xx"),
    ("[\u200e\u200f\u202a-\u202e]", 0, "a\u202eb\u200fc", ""),
    (r"x*", re.MULTILINE, "", "-"),
])
def test_every_method_answers_as_the_compiled_pattern_does(source, flags, text, replacement):
    lazy, real = LazyPattern(source, flags), re.compile(source, flags)
    for pos, endpos in ((0, len(text)), (1, max(len(text) - 1, 0))):
        for method in ("match", "fullmatch", "search"):
            found, expected = getattr(lazy, method)(text, pos, endpos), getattr(real, method)(
                text, pos, endpos)
            assert (found and found.span()) == (expected and expected.span())
        assert lazy.findall(text, pos, endpos) == real.findall(text, pos, endpos)
        assert [m.span() for m in lazy.finditer(text, pos, endpos)] == [
            m.span() for m in real.finditer(text, pos, endpos)]
    assert lazy.sub(replacement, text) == real.sub(replacement, text)
    assert lazy.subn(replacement, text, 1) == real.subn(replacement, text, 1)
    assert lazy.sub(lambda m: m.group(0).upper(), text) == real.sub(
        lambda m: m.group(0).upper(), text)
    assert lazy.split(text, 1) == real.split(text, 1)
    assert lazy.compiled.pattern == source and lazy.compiled.flags == real.flags


def test_a_bytes_pattern_reads_any_buffer():
    field = LazyPattern(rb"^([!-9;-~]+):", re.MULTILINE)
    raw = b"Subject: hi\r\nX-Spam: no\r\n"
    assert [m.group(1) for m in field.finditer(raw)] == [b"Subject", b"X-Spam"]
    assert field.search(memoryview(raw), 5) is not None  # a memoryview, as the parser passes
    assert field.split(raw) == re.split(rb"^([!-9;-~]+):", raw, flags=re.MULTILINE)
    with pytest.raises(TypeError):
        field.match("text, not bytes")  # type: ignore[call-overload]


def test_a_wrong_pattern_fails_when_used_with_the_error_re_gives():
    broken = LazyPattern(r"(unclosed")
    with pytest.raises(re.error):
        broken.search("anything")


def test_every_pattern_of_the_package_compiles():
    # Compiled on first use, a mistyped pattern would fail only when some message reaches it:
    # here every module-level LazyPattern of eddymail is compiled.
    import importlib
    import pkgutil
    from pathlib import Path

    import eddymail

    found = 0
    for module_info in pkgutil.walk_packages(eddymail.__path__, "eddymail."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if isinstance(value, LazyPattern):
                assert value.compiled.pattern == value.source, f"{module_info.name}.{name}"
                found += 1
    # ...all of them: as many as the source defines (so none hides where this walk misses it).
    defined = sum(len(re.findall(r"^\w+ = LazyPattern\(", path.read_text(), re.MULTILINE))
                  for path in Path(eddymail.__file__).parent.rglob("*.py"))
    assert found == defined > 0
