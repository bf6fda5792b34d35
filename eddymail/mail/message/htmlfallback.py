"""The last resort for HTML that lxml cannot read: a stdlib tag stripper as safe as the tree.

Used when libxml2 refuses a document or it nests deeper than libxml2 reads. Having no tree,
it keeps a stack of the open elements: text inside one that is hidden (``htmlhiding``: by
attribute, style, a ``<style>`` rule, or being ``script``/``style``/``head``/...) is not
shown, and an element never closed stays open to the end, so a sender cannot make hidden
text reappear by leaving out an end tag (hiding too much is the safe way to fail). Every
link's target is written after its text, as the tree converter does, and images show
their alt text.
"""

from __future__ import annotations

import contextlib
import re
from html.parser import HTMLParser

from eddymail.mail.message.htmlhiding import (
    MAX_STYLESHEET_CHARS,
    HidingRules,
    hidden_by_attributes,
    hiding_rules,
    link_suffix,
)

# Never shown, whatever their style says (the tree converter drops them too).
_HIDDEN_TAGS = frozenset({
    "script", "style", "head", "title", "template", "iframe", "object", "embed", "noembed",
    "frameset", "noframes", "svg", "math", "applet", "audio", "video",
})  # fmt: skip
# Elements without content: they are never pushed on the stack.
_VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr", "keygen", "image",
})  # fmt: skip
_BLOCKS = frozenset({
    "p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr",
    "blockquote", "pre", "ul", "ol", "dl", "dt", "dd", "section", "article",
})  # fmt: skip
_STYLE_BLOCK = re.compile(r"<style\b[^>]*>(.*?)(?:</style\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_SPACE_RUNS = re.compile(r"\s+")
#: The deepest stack kept; deeper elements are counted, not stored (a bomb of 100k opens).
MAX_OPEN = 10_000


class _Open:
    """An open element: whether it hides its content, and for a link its text so far."""

    __slots__ = ("hidden", "href", "tag", "text")

    def __init__(self, tag: str, hidden: bool, href: str | None) -> None:
        self.tag, self.hidden, self.href = tag, hidden, href
        self.text: list[str] | None = [] if href is not None else None


class _Stripper(HTMLParser):
    def __init__(self, rules: HidingRules) -> None:
        super().__init__(convert_charrefs=True)
        self.rules = rules
        self.parts: list[str] = []
        self.stack: list[_Open] = []
        self.hidden_depth = 0  # open elements that hide their content
        self.overflow = 0  # opens beyond MAX_OPEN: hidden if any ancestor hides

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        # A bare attribute (<div hidden>) comes with the value None: present all the same.
        hidden = (tag in _HIDDEN_TAGS
                  or hidden_by_attributes("" if "hidden" in values else None,
                                          values.get("style"))
                  or self.rules.match(tag, values.get("class"), values.get("id")))
        if tag == "img":
            alt = " ".join((values.get("alt") or "").split())
            if alt and not hidden:
                self._emit(f"[{alt}]")
        if tag in _BLOCKS:
            self._emit("\n")
        if tag in _VOID:
            return
        if len(self.stack) >= MAX_OPEN:
            self.overflow += 1
            return
        self.stack.append(_Open(tag, hidden, values.get("href") if tag == "a" else None))
        if hidden:
            self.hidden_depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and self.stack and self.stack[-1].tag == tag and not self.overflow:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.overflow:
            self.overflow -= 1
            return
        # Close up to the matching open element; an end tag nothing matches is ignored.
        if not any(element.tag == tag for element in self.stack):
            if tag in _BLOCKS:
                self._emit("\n")
            return
        while self.stack and self._close().tag != tag:
            pass
        if tag in _BLOCKS:
            self._emit("\n")

    def handle_data(self, data: str) -> None:
        self._emit(_SPACE_RUNS.sub(" ", data))

    def _emit(self, text: str) -> None:
        if self.hidden_depth or not text:
            return
        self.parts.append(text)
        for element in self.stack:
            if element.text is not None:
                element.text.append(text)

    def _close(self) -> _Open:
        """Close the innermost open element; a link writes its target after its text."""
        element = self.stack.pop()
        if element.hidden:
            self.hidden_depth -= 1
        if element.text is not None:
            self._emit(link_suffix(" ".join("".join(element.text).split()), element.href))
        return element

    def finish(self) -> str:
        """The text; links still open at the end get their targets too."""
        while self.stack:
            self._close()
        return "".join(self.parts)


def strip_tags(html: str) -> str:
    """The visible text of ``html`` with link targets shown; never raises."""
    sheet = "".join(_STYLE_BLOCK.findall(html[: MAX_STYLESHEET_CHARS * 4]))
    stripper = _Stripper(hiding_rules([sheet]))
    # html.parser on hostile input may raise: what was collected so far is kept.
    with contextlib.suppress(Exception):
        stripper.feed(html)
        stripper.close()
    return stripper.finish()
