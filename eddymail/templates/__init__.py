"""Notification templates: what eddymail sends, the shipped texts, checking and rendering.

This layer knows nothing of the database, the command line or the terminal: callers pass
the stored text of a template (or ``default_source``) and the values to put in it.

    >>> from eddymail.templates import default_source, render, sample_context
    >>> text = default_source("ticket_created", "en")
    >>> render("ticket_created", text, sample_context("ticket_created", "en")).subject
    '[#1042] Request received: March invoice has not arrived'
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from eddymail.templates import plain
from eddymail.templates.defaults import (
    LANGUAGES,
    TEMPLATE_NAMES,
    TemplateSpec,
    TemplateVariable,
    default_source,
    sample_context,
    spec,
)
from eddymail.templates.layout import (
    MAX_SOURCE_CHARS,
    MAX_SUBJECT_CHARS,
    MAX_TEXT_CHARS,
    RenderedTemplate,
)

if TYPE_CHECKING:
    from eddymail.templates.engine import validate


def render(name: str, source: str, context: Mapping[str, object]) -> RenderedTemplate:
    """Render template ``name`` from ``source`` with values from ``context``.

    See ``eddymail.templates.engine.render`` for the rules. A template made only of text,
    values, ``or`` and if/else is rendered without Jinja (``eddymail.templates.plain``), with
    the same result; any other, and every mistake, by Jinja.
    """
    rendered = plain.render(name, source, context)
    if rendered is not None:
        return rendered
    from eddymail.templates import engine

    return engine.render(name, source, context)


# Jinja is imported only when a template needs it: checking one (``validate``), or rendering
# one that is not simple. A run that sends the shipped notifications does not load it.
def __getattr__(name: str) -> Any:
    if name != "validate":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from eddymail.templates import engine

    return engine.validate


__all__ = [
    "LANGUAGES",
    "MAX_SOURCE_CHARS",
    "MAX_SUBJECT_CHARS",
    "MAX_TEXT_CHARS",
    "TEMPLATE_NAMES",
    "RenderedTemplate",
    "TemplateSpec",
    "TemplateVariable",
    "default_source",
    "render",
    "sample_context",
    "spec",
    "validate",
]
