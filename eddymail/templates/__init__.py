"""Notification templates: what eddymail sends, the shipped texts, checking and rendering.

This layer knows nothing of the database, the command line or the terminal: callers pass
the stored text of a template (or ``default_source``) and the values to put in it.

    >>> from eddymail.templates import default_source, render, sample_context
    >>> text = default_source("ticket_created", "en")
    >>> render("ticket_created", text, sample_context("ticket_created", "en")).subject
    '[#1042] Request received: March invoice has not arrived'
"""

import importlib
from typing import TYPE_CHECKING, Any

from eddymail.templates.defaults import (
    LANGUAGES,
    TEMPLATE_NAMES,
    TemplateSpec,
    TemplateVariable,
    default_source,
    sample_context,
    spec,
)

if TYPE_CHECKING:
    from eddymail.templates.engine import (
        MAX_SOURCE_CHARS,
        MAX_SUBJECT_CHARS,
        RenderedTemplate,
        render,
        validate,
    )
    from eddymail.templates.sandbox import MAX_TEXT_CHARS

# Jinja is imported only when a template is checked or rendered: listing templates, or a run
# that sends no notification, does not pay for it.
_LAZY = {
    "MAX_SOURCE_CHARS": "engine", "MAX_SUBJECT_CHARS": "engine", "RenderedTemplate": "engine",
    "render": "engine", "validate": "engine", "MAX_TEXT_CHARS": "sandbox",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # import_module, not "from eddymail.templates import ...": that would ask this very
    # function for the submodule and recurse.
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)


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
