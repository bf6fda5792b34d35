"""Notification templates: what eddymail sends, the shipped texts, checking and rendering.

This layer knows nothing of the database, the command line or the terminal: callers pass
the stored text of a template (or ``default_source``) and the values to put in it.

    >>> from eddymail.templates import default_source, render, sample_context
    >>> text = default_source("ticket_created", "en")
    >>> render("ticket_created", text, sample_context("ticket_created", "en")).subject
    '[#1042] Request received: March invoice has not arrived'
"""

from eddymail.templates.defaults import (
    LANGUAGES,
    TEMPLATE_NAMES,
    TemplateSpec,
    TemplateVariable,
    default_source,
    sample_context,
    spec,
)
from eddymail.templates.engine import (
    MAX_SOURCE_CHARS,
    MAX_SUBJECT_CHARS,
    RenderedTemplate,
    render,
    validate,
)
from eddymail.templates.sandbox import MAX_TEXT_CHARS

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
