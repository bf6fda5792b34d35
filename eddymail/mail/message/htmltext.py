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
nests deeper than libxml2 reads, the stdlib tag stripper of ``htmlfallback`` is used
instead, with the same rules for hidden text and link targets (``htmlhiding``).
"""

from __future__ import annotations

import re

import lxml.etree
import lxml.html
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.html_engine import Inscriptis
from inscriptis.model.config import ParserConfig

from eddymail.mail.message.htmlfallback import strip_tags
from eddymail.mail.message.htmlhiding import (
    STAND_IN_BASE as _STAND_IN_BASE,
)
from eddymail.mail.message.htmlhiding import (
    hidden_by_attributes,
    hiding_rules,
    link_suffix,
)

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
_STAND_INS = re.compile(
    f"[{chr(_STAND_IN_BASE + 0x01)}-{chr(_STAND_IN_BASE + 0x08)}"
    f"{chr(_STAND_IN_BASE + 0x0B)}{chr(_STAND_IN_BASE + 0x0E)}-{chr(_STAND_IN_BASE + 0x1F)}"
    f"{chr(_STAND_IN_BASE + 0x7F)}-{chr(_STAND_IN_BASE + 0x9F)}]"
)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*>", re.IGNORECASE)
_XML_INCOMPATIBLE = re.compile("[\ufffe\uffff\ud800-\udfff]")
_VOID_READ_AS_CONTAINERS = ("embed", "source", "track", "wbr", "keygen", "bgsound", "image")
_STAND_IN_RANGE = re.compile(f"[{chr(_STAND_IN_BASE)}-{chr(_STAND_IN_BASE + 0x9F)}]")
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
    # Characters no XML tree may hold: in an attribute (a link target, an image's alt text)
    # they made the rewrite of the tree raise. They cannot be displayed anyway.
    html = _XML_INCOMPATIBLE.sub("\ufffd", html)
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
            return _finish(strip_tags(html))
        _sanitize(tree)
        config = ParserConfig(css=CSS_PROFILES["strict"], display_images=False, display_links=False)
        text = Inscriptis(tree, config).get_text()
    except (lxml.etree.LxmlError, ValueError, RecursionError):
        text = strip_tags(html)
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
    hidden_rules = hiding_rules(style.text or "" for style in tree.iter("style"))
    for element in list(tree.iter(*_DROPPED_TAGS)):
        _drop(element)
    for element in [element for element in tree.iter() if isinstance(element.tag, str)]:
        if hidden_by_attributes(element.get("hidden"), element.get("style")) or \
                hidden_rules.match(element.tag, element.get("class"), element.get("id")):
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


def _show_target(link: lxml.html.HtmlElement) -> None:
    text = " ".join(link.text_content().split())
    suffix = link_suffix(text, link.get("href"))
    if not suffix:
        return
    if len(link):
        last = link[-1]
        last.tail = (last.tail or "") + suffix
    else:
        link.text = (link.text or "") + suffix
