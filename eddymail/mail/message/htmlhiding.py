"""What an HTML mail hides from its reader, and where its links really go: one set of rules
for the tree converter (``htmltext``) and its fallback (``htmlfallback``), so neither shows
what the other hides, and both show every link's target.

Hidden: the ``hidden`` attribute; ``display:none``, ``visibility:hidden``, zero size with
``overflow:hidden``, zero opacity or font size, ``mso-hide:all`` in a ``style`` attribute
or in a top-level rule of a ``<style>`` block with a simple selector (``tag``, ``.class``,
``#id`` and their combinations). Rules inside ``@media`` apply to some screens only, and
complex selectors are ignored rather than guessed at: text is only ever hidden by a rule
that clearly hides it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# An unterminated comment runs to the end, so "/* /* /*" costs one scan, not one per "/*".
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.DOTALL)
_MAX_STYLE_CHARS = 4000
MAX_STYLESHEET_CHARS = 100_000
_MAX_SELECTORS = 50
_BRACES = re.compile(r"[{}]")
_SIMPLE_SELECTOR = re.compile(r"([A-Za-z][A-Za-z0-9]*)?((?:[.#][A-Za-z0-9_-]+)*)")
_SELECTOR_PART = re.compile(r"([.#])([A-Za-z0-9_-]+)")
_ZERO = re.compile(r"^[+-]?0*\.?0+(?:px|pt|em|rem|ex|ch|%|vh|vw|cm|mm|in|pc)?$")

_Selector = tuple[str | None, frozenset[str], str | None]  # tag, classes, id

MAX_LINK_CHARS = 2000
# Control characters travel through the converters as private-use stand-ins from here on
# (see ``htmltext``).
STAND_IN_BASE = 0xF0000
# Browsers drop blanks and controls from a link target; so does the target shown.
_URL_NOISE = re.compile(rf"[\s\x00-\x1f\x7f{chr(STAND_IN_BASE)}-{chr(STAND_IN_BASE + 0x9F)}]+")


def link_suffix(text: str, href: str | None) -> str:
    """What to write after a link's text: `` <target>``, or "" when the text is the target.

    A link whose text lies about where it goes ("www.bank.example") shows where it really
    goes; fragment links (``#top``) show nothing.
    """
    target = _URL_NOISE.sub("", href or "")
    if not target or target.startswith("#"):
        return ""
    if len(target) > MAX_LINK_CHARS:
        target = target[:MAX_LINK_CHARS] + "…"
    if _same_target(text, target):
        return ""
    return f" <{target}>" if text else f"<{target}>"


def _same_target(text: str, target: str) -> bool:
    """True when showing the target would only repeat the link text."""
    variants = {target, target.rstrip("/")}
    for prefix in ("mailto:", "tel:", "https://", "http://"):
        if target.lower().startswith(prefix):
            bare = target[len(prefix) :]
            variants.update({bare, bare.rstrip("/")})
    return text in variants or text.rstrip("/") in variants


def hidden_by_attributes(hidden: str | None, style: str | None) -> bool:
    """True when an element's ``hidden`` and ``style`` attributes hide it."""
    if hidden is not None:
        return True
    if not style:
        return False
    return declarations_hide(_CSS_COMMENT.sub("", style[:_MAX_STYLE_CHARS]))


class HidingRules:
    """Simple selectors of stylesheet rules that hide what they select, indexed so each
    element costs a few lookups."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str | None], list[_Selector]] = {}

    def add(self, tag: str | None, classes: frozenset[str], ident: str | None) -> None:
        """Remember one selector under its most specific part."""
        key = ("id", ident) if ident else ("class", min(classes)) if classes else ("tag", tag)
        self.by_key.setdefault(key, []).append((tag, classes, ident))

    def match(self, tag: str, class_attribute: str | None, ident: str | None) -> bool:
        """True when a hiding rule selects an element with this tag, class and id."""
        if not self.by_key:
            return False
        classes = frozenset((class_attribute or "").split())
        keys = [("tag", tag), *(("class", name) for name in classes)]
        if ident:
            keys.append(("id", ident))
        return any(
            (selector_tag is None or selector_tag == tag)
            and selector_classes <= classes
            and (selector_id is None or selector_id == ident)
            for key in keys
            for selector_tag, selector_classes, selector_id in self.by_key.get(key, ())
        )


def hiding_rules(style_blocks: Iterable[str]) -> HidingRules:
    """The rules of the document's ``<style>`` blocks that hide what they select."""
    rules = HidingRules()
    sheet = "".join(style_blocks)[:MAX_STYLESHEET_CHARS]
    for prelude, body in _top_level_rules(_CSS_COMMENT.sub("", sheet)):
        if not declarations_hide(body):
            continue
        for selector in prelude.split(",")[:_MAX_SELECTORS]:
            match = _SIMPLE_SELECTOR.fullmatch(selector.strip())
            if match is None or not selector.strip():
                continue
            tag = match.group(1).lower() if match.group(1) else None
            parts = _SELECTOR_PART.findall(match.group(2) or "")
            classes = frozenset(name for kind, name in parts if kind == ".")
            idents = [name for kind, name in parts if kind == "#"]
            rules.add(tag, classes, idents[0] if idents else None)
    return rules


def _top_level_rules(sheet: str) -> list[tuple[str, str]]:
    """(selector list, declarations) of each rule outside an at-rule block, in one scan."""
    rules: list[tuple[str, str]] = []
    depth = 0
    start = 0
    prelude = ""
    for brace in _BRACES.finditer(sheet):
        if brace.group() == "{":
            if depth == 0:
                # "@import url(x); .a" -> ".a": statements end with a semicolon.
                prelude = sheet[start : brace.start()].rsplit(";", 1)[-1].strip()
                start = brace.end()
            depth += 1
        elif depth > 0:
            depth -= 1
            if depth == 0:
                if not prelude.startswith("@"):
                    rules.append((prelude, sheet[start : brace.start()]))
                start = brace.end()
    return rules


def declarations_hide(text: str) -> bool:
    """True when CSS declarations (``a: b; c: d``) make an element invisible."""
    declarations: dict[str, str] = {}
    for declaration in text.split(";"):
        name, _, value = declaration.partition(":")
        declarations[name.strip().lower()] = value.lower().replace("!important", "").strip()
    overflow_hidden = declarations.get("overflow") == "hidden"
    return (
        declarations.get("display") == "none"
        or declarations.get("visibility") in ("hidden", "collapse")
        or declarations.get("mso-hide") == "all"
        or bool(_ZERO.match(declarations.get("opacity", "1")))
        or bool(_ZERO.match(declarations.get("font-size", "1")))
        or (
            overflow_hidden
            and any(
                _ZERO.match(declarations.get(name, "1"))
                for name in ("height", "max-height", "width", "max-width")
            )
        )
    )
