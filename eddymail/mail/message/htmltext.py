"""HTML bodies turned into readable plain text, offline.

Converter choice: lxml's HTML parser (libxml2) builds the tree and inscriptis (Apache-2.0)
lays it out, after a sanitising pass of our own over the tree. A streaming stdlib
``html.parser`` converter was the alternative, but it has no tree: it cannot tell where an
unclosed ``<div hidden>`` ends, so hidden text either leaks or swallows the visible rest,
and it lays out tables and lists poorly. libxml2 recovers from broken markup the way mail
clients do, never fetches anything (the parser is created with ``no_network=True``; the HTML
parser neither loads DTDs nor expands external entities) and caps nesting at 256 levels;
inscriptis gives the best plain-text layout of tables and lists among permissively licensed
converters (html2text is GPL). The pass of our own drops ``script``/``style``/``head`` and
hidden elements (``hidden``, ``display:none``, ``visibility:hidden``, zero size or opacity,
``mso-hide``, in a ``style`` attribute or by a simple class/id/tag rule of a ``<style>``
block), keeps the text that libxml2 nests inside HTML 5 void elements it does not know
(``<embed>``, ``<source>``, ``<wbr>``), keeps control characters for display to escape,
shows images as ``[alt text]`` and makes every link target visible as
``text <https://target>`` unless the text already is the target, so a link whose text lies
about where it goes shows where it really goes. If lxml cannot build a tree, or the document
nests deeper than libxml2 reads, a small stdlib tag stripper is used instead (it keeps all
text, hidden text included, rather than lose any).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import lxml.etree
import lxml.html
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.html_engine import Inscriptis
from inscriptis.model.config import ParserConfig

MAX_LINK_CHARS = 2000
_LIBXML2_MAX_DEPTH = 250
_DROPPED_TAGS = (
    "script", "style", "head", "title", "template", "iframe", "object", "embed", "noembed",
    "frameset", "noframes", "svg", "math", "meta", "link", "base", "applet", "audio", "video",
)  # fmt: skip
_BLOCK_TAGS = (
    "table", "p", "div", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
)  # fmt: skip
_TABLE_TAGS = ("table", "thead", "tbody", "tfoot", "tr", "td", "th", "caption")
# Control characters are kept in the text, as in plain bodies, but never shown to libxml2
# (which drops or rewrites some of them): each travels through the tree as a private-use
# stand-in and is restored afterwards. HTML's own blanks (tab, LF, FF, CR) stay blanks.
_CONTROLS = re.compile("[\x01-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_STAND_IN_BASE = 0xF0000
_STAND_INS = re.compile(
    f"[{chr(_STAND_IN_BASE + 0x01)}-{chr(_STAND_IN_BASE + 0x08)}"
    f"{chr(_STAND_IN_BASE + 0x0B)}{chr(_STAND_IN_BASE + 0x0E)}-{chr(_STAND_IN_BASE + 0x1F)}"
    f"{chr(_STAND_IN_BASE + 0x7F)}-{chr(_STAND_IN_BASE + 0x9F)}]"
)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*>", re.IGNORECASE)
# An unterminated comment runs to the end, so "/* /* /*" costs one scan, not one per "/*".
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.DOTALL)
_MAX_STYLE_CHARS = 4000
_MAX_STYLESHEET_CHARS = 100_000
_MAX_SELECTORS = 50
_BRACES = re.compile(r"[{}]")
_SIMPLE_SELECTOR = re.compile(r"([A-Za-z][A-Za-z0-9]*)?((?:[.#][A-Za-z0-9_-]+)*)")
_SELECTOR_PART = re.compile(r"([.#])([A-Za-z0-9_-]+)")
_VOID_READ_AS_CONTAINERS = ("embed", "source", "track", "wbr", "keygen", "bgsound", "image")
_ZERO = re.compile(r"^[+-]?0*\.?0+(?:px|pt|em|rem|ex|ch|%|vh|vw|cm|mm|in|pc)?$")
_STAND_IN_RANGE = re.compile(f"[{chr(_STAND_IN_BASE)}-{chr(_STAND_IN_BASE + 0x9F)}]")
# Browsers drop blanks and controls from a link target; so does the target shown.
_URL_NOISE = re.compile(
    rf"[\s\x00-\x1f\x7f{chr(_STAND_IN_BASE)}-{chr(_STAND_IN_BASE + 0x9F)}]+"
)
_BLANK_RUNS = re.compile(r"\n{3,}")
_SPACE_RUNS = re.compile(r"\s+")


def html_to_text(html: str) -> str:
    """Readable text of an HTML document or fragment; never fetches, never raises.

    Control characters in the text are kept (NUL becomes U+FFFD), for display to escape.
    """
    html = _XML_DECLARATION.sub("", html.replace("\x00", "\ufffd"), count=1)
    if not html.strip():
        return ""
    # A private-use character the sender sent in the stand-in range must not come back as a
    # control character; it has no meaning outside the sender's own fonts anyway.
    html = _STAND_IN_RANGE.sub("\ufffd", html)
    return _restore_controls(_convert(_CONTROLS.sub(_stand_in, html)))


def _stand_in(match: re.Match[str]) -> str:
    return chr(_STAND_IN_BASE + ord(match.group()))


def _restore_controls(text: str) -> str:
    return _STAND_INS.sub(lambda match: chr(ord(match.group()) - _STAND_IN_BASE), text)


def _convert(html: str) -> str:
    try:
        parser = lxml.html.HTMLParser(
            recover=True,
            no_network=True,
            remove_comments=True,
            remove_pis=True,
            huge_tree=False,
            default_doctype=False,
        )
        tree = lxml.html.document_fromstring(html, parser=parser)
        if _depth(tree) >= _LIBXML2_MAX_DEPTH:
            # libxml2 stops reading at 256 levels and drops the rest of the document.
            return _finish(_strip_tags(html))
        _sanitize(tree)
        config = ParserConfig(css=CSS_PROFILES["strict"], display_images=False, display_links=False)
        text = Inscriptis(tree, config).get_text()
    except (lxml.etree.LxmlError, ValueError, RecursionError):
        text = _strip_tags(html)
    return _finish(text)


def _finish(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")


def _depth(tree: lxml.html.HtmlElement) -> int:
    depth = deepest = 0
    for event, _ in lxml.etree.iterwalk(tree, events=("start", "end")):
        depth += 1 if event == "start" else -1
        deepest = max(deepest, depth)
    return deepest


def _sanitize(tree: lxml.html.HtmlElement) -> None:
    # libxml2 reads HTML 4, where these HTML 5 void elements do not exist: it makes all that
    # follows one of them its content, and dropping the element (<embed> is dropped) or
    # replacing it (an image by its alt text) would drop the rest of the mail with it.
    for element in list(tree.iter(*_VOID_READ_AS_CONTAINERS)):
        _unnest(element)
    for image in tree.iter("image"):
        image.tag = "img"  # what HTML 5 (and so every mail client) makes of it
    hidden_rules = _hiding_rules(tree)
    for element in list(tree.iter(*_DROPPED_TAGS)):
        _drop(element)
    for element in [element for element in tree.iter() if isinstance(element.tag, str)]:
        if _is_hidden(element) or hidden_rules.match(element):
            _drop(element)
    for image in list(tree.iter("img")):
        alt = " ".join((image.get("alt") or "").split())
        if alt:
            replacement = lxml.html.Element("span")
            replacement.text = f"[{alt}]"
            replacement.tail = image.tail
            parent = image.getparent()
            if parent is not None:
                parent.replace(image, replacement)
        else:
            _drop(image)
    for link in list(tree.iter("a")):
        _show_target(link)
    _linearize_layout_tables(tree)


def _unnest(element: lxml.html.HtmlElement) -> None:
    """Move what the parser nested inside a void element out, right after it."""
    parent = element.getparent()
    if parent is None or (len(element) == 0 and not element.text):
        return
    inner_text, element.text = element.text or "", None
    children = list(element)
    if children:
        children[-1].tail = (children[-1].tail or "") + (element.tail or "")
        element.tail = inner_text
        position = parent.index(element)
        for offset, child in enumerate(children, start=1):
            parent.insert(position + offset, child)
    else:
        element.tail = inner_text + (element.tail or "")


def _linearize_layout_tables(tree: lxml.html.HtmlElement) -> None:
    """Turn layout tables (holding blocks or other tables) into plain blocks, one per cell.

    Newsletters are built from nested layout tables; laid out as grids they come out as
    columns hundreds of characters wide. One walk finds, for every table, whether it holds
    a block and which rows and cells are its own (not a nested table's), so a document of
    deeply nested tables costs linear time.
    """
    open_tables: list[lxml.html.HtmlElement] = []
    holds_block: set[lxml.html.HtmlElement] = set()
    owned: dict[lxml.html.HtmlElement, list[lxml.html.HtmlElement]] = {}
    for event, element in lxml.etree.iterwalk(tree, events=("start", "end")):
        tag = element.tag
        if event == "end":
            if tag == "table" and open_tables:
                open_tables.pop()
            continue
        if tag in _BLOCK_TAGS and open_tables:
            holds_block.add(open_tables[-1])
        if tag == "table":
            open_tables.append(element)
            owned[element] = []
        elif tag in _TABLE_TAGS and open_tables:
            owned[open_tables[-1]].append(element)
    for table, elements in owned.items():
        if table in holds_block or table.get("role") == "presentation":
            table.tag = "div"
            for element in elements:
                element.tag = "div"


def _drop(element: lxml.html.HtmlElement) -> None:
    if element.getparent() is not None:
        element.drop_tree()


def _is_hidden(element: lxml.html.HtmlElement) -> bool:
    if element.get("hidden") is not None:
        return True
    style = element.get("style")
    if not style:
        return False
    return _declarations_hide(_CSS_COMMENT.sub("", style[:_MAX_STYLE_CHARS]))


_Selector = tuple[str | None, frozenset[str], str | None]  # tag, classes, id


class _HidingRules:
    """Simple selectors (``tag``, ``.class``, ``#id`` and their combinations) of stylesheet
    rules that hide what they select, indexed so each element costs a few lookups."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str | None], list[_Selector]] = {}

    def add(self, tag: str | None, classes: frozenset[str], ident: str | None) -> None:
        """Remember one selector under its most specific part."""
        key = ("id", ident) if ident else ("class", min(classes)) if classes else ("tag", tag)
        self.by_key.setdefault(key, []).append((tag, classes, ident))

    def match(self, element: lxml.html.HtmlElement) -> bool:
        """True when a hiding rule selects ``element``."""
        element_tag = element.tag
        if not self.by_key or not isinstance(element_tag, str):
            return False  # (comments and processing instructions have no tag name)
        classes = frozenset((element.get("class") or "").split())
        ident = element.get("id")
        keys: list[tuple[str, str | None]] = [
            ("tag", element_tag), *(("class", name) for name in classes)]
        if ident:
            keys.append(("id", ident))
        return any(
            (tag is None or tag == element_tag)
            and selector_classes <= classes
            and (selector_id is None or selector_id == ident)
            for key in keys
            for tag, selector_classes, selector_id in self.by_key.get(key, ())
        )


def _hiding_rules(tree: lxml.html.HtmlElement) -> _HidingRules:
    """The rules of the document's ``<style>`` blocks that hide what they select.

    Preheaders and tracking text are commonly hidden by class. Only top-level rules count:
    a rule inside ``@media`` applies to some screens only (mobile layouts show what the
    desktop one hides), and complex selectors (descendants, attributes, pseudo-classes)
    are ignored rather than guessed at, so text is only ever hidden by a rule that clearly
    hides it.
    """
    rules = _HidingRules()
    sheet = "".join(style.text or "" for style in tree.iter("style"))[:_MAX_STYLESHEET_CHARS]
    for prelude, body in _top_level_rules(_CSS_COMMENT.sub("", sheet)):
        if not _declarations_hide(body):
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


def _declarations_hide(text: str) -> bool:
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


def _show_target(link: lxml.html.HtmlElement) -> None:
    target = _URL_NOISE.sub("", link.get("href") or "")
    if not target or target.startswith("#"):
        return
    if len(target) > MAX_LINK_CHARS:
        target = target[:MAX_LINK_CHARS] + "…"
    text = " ".join(link.text_content().split())
    if _same_target(text, target):
        return
    suffix = f" <{target}>" if text else f"<{target}>"
    if len(link):
        last = link[-1]
        last.tail = (last.tail or "") + suffix
    else:
        link.text = (link.text or "") + suffix


def _same_target(text: str, target: str) -> bool:
    """True when showing the target would only repeat the link text."""
    variants = {target, target.rstrip("/")}
    for prefix in ("mailto:", "tel:", "https://", "http://"):
        if target.lower().startswith(prefix):
            bare = target[len(prefix) :]
            variants.update({bare, bare.rstrip("/")})
    return text in variants or text.rstrip("/") in variants


_SKIPPED = frozenset({"script", "style", "head", "title", "template"})
_BLOCKS = frozenset(
    {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr"}
)


class _TagStripper(HTMLParser):
    """Last resort when lxml refuses the document: text outside script/style, one per line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self.skipping += 1
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(_SPACE_RUNS.sub(" ", data))


def _strip_tags(html: str) -> str:
    stripper = _TagStripper()
    try:
        stripper.feed(html)
        stripper.close()
    except Exception:  # html.parser on hostile input: keep what was collected so far
        return "".join(stripper.parts)
    return "".join(stripper.parts)
