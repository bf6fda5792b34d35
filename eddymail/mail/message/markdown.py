"""The HTML part of a staff reply, rendered from the Markdown the agent wrote.

Only the agent's own text is read as Markdown; the frame around it (greeting, signature,
footer, from the ``reply`` template) is shown as the plain text it is, so a name with
underscores or a signature separator never turns into markup. Raw HTML in the agent's text is
escaped, not passed through (``html: False``); links keep only harmless schemes (markdown-it
refuses ``javascript:``, ``vbscript:``, ``file:`` and ``data:``), and images are not rendered
at all: a remote image in a reply would tell a third party when the customer read it.

markdown-it-py is imported when a reply asks for HTML, not before.
"""

from __future__ import annotations

import html
from typing import Any

_renderer: Any = None

_PAGE = (
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n"
    "<body>\n<div style=\"font-family: sans-serif; line-height: 1.4\">\n{}\n</div>\n"
    "</body></html>\n"
)


def markdown_to_html(text: str) -> str:
    """``text`` (CommonMark with tables and strikethrough) as an HTML fragment."""
    global _renderer
    if _renderer is None:
        from markdown_it import MarkdownIt

        # breaks: a line break the agent typed stays a line break, as in the plain text.
        _renderer = (MarkdownIt("commonmark", {"html": False, "breaks": True})
                     .enable(["table", "strikethrough"]).disable("image"))
    return str(_renderer.render(text))


def plain_to_html(text: str) -> str:
    """Plain text as HTML that looks the same: escaped, line breaks kept."""
    return html.escape(text).replace("\n", "<br>\n")


def reply_html(framed: str, placeholder: str, body: str) -> str | None:
    """The HTML page of a reply: ``framed`` as plain text with ``body`` rendered at ``placeholder``.

    ``framed`` is the reply template rendered with ``placeholder`` where the agent's text
    goes. None when the placeholder is not there exactly once (a template that changes the
    text, say with a filter): then the reply goes out as plain text only.
    """
    if framed.count(placeholder) != 1:
        return None
    before, after = (part.strip("\n") for part in framed.split(placeholder))
    # The Markdown blocks bring their own margins; the frame's blank lines would double them.
    fragment = "\n".join(
        [f"<p>{plain_to_html(before)}</p>" if before else "", markdown_to_html(body),
         f"<p>{plain_to_html(after)}</p>" if after else ""])
    return _PAGE.format(fragment)
