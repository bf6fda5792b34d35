"""``eddymail template``: the notification texts customers receive, and their on/off switch."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from eddymail import templates
from eddymail.cli.app import agent_option, json_option, state, with_database
from eddymail.errors import EddymailError, ValidationError
from eddymail.services.actors import ANONYMOUS, Actor
from eddymail.services.outgoing import templates as template_service
from eddymail.services.outgoing.templates import TemplateDetail, TemplateSummary

LANGUAGE = click.Choice(templates.LANGUAGES, case_sensitive=False)
LANGUAGE_HELP = "Language of the text (default: the team's `language` setting)."


@click.group("template")
def template_group() -> None:
    """Notification templates: the texts eddymail mails to customers and to agents.

    Each template is a "Subject: ..." line, a blank line and the body, with
    {{ variables }} such as {{ ticket.id }}; `template show NAME` lists them.

    \b
    Examples:
      eddymail template list
      eddymail template edit ticket_created
      eddymail template disable registration
    """


def _status(item: TemplateSummary | TemplateDetail) -> str:
    if not item.can_disable:
        return "on (always)"
    return "on" if item.enabled else "off"


def _render_detail(detail: TemplateDetail) -> None:
    out = state().output
    out.fields(
        [
            ("Template", detail.name),
            ("Purpose", detail.description),
            ("Language", detail.language),
            ("Sending", _status(detail)),
            ("Sent", "automatically" if detail.automatic else "when staff act"),
            ("To", "agents" if detail.audience == "staff" else "customers"),
            ("Text", "customised" if detail.customised else "shipped default"),
            ("Changed", detail.updated_at or "-"),
        ],
        title=f"Template {detail.name}",
    )
    out.line("")
    out.table(
        ["Variable", "Meaning"],
        [
            [
                "{{ " + variable.name + " }}",
                variable.description
                + (" (must appear)" if variable.required else "")
                + (" (several lines)" if variable.multiline else ""),
            ]
            for variable in detail.variables
        ],
        title="Variables",
    )
    out.line("")
    out.text(detail.source)


@template_group.command("list")
@click.option("--language", type=LANGUAGE, help=LANGUAGE_HELP)
@json_option
@with_database
def list_(language: str | None) -> None:
    """List the templates: on or off, customised or the shipped text.

    \b
    Examples:
      eddymail template list
      eddymail template list --language ru --json
    """
    items = template_service.list_templates(language)
    out = state().output
    out.emit(
        {"templates": items},
        lambda: out.table(
            ["Template", "To", "Sending", "Text", "Language", "Purpose"],
            [
                [
                    item.name,
                    "agents" if item.audience == "staff" else "customers",
                    _status(item),
                    "customised" if item.customised else "default",
                    item.language,
                    item.description,
                ]
                for item in items
            ],
        ),
    )


@template_group.command("show")
@click.argument("name")
@click.option("--language", type=LANGUAGE, help=LANGUAGE_HELP)
@json_option
@with_database
def show(name: str, language: str | None) -> None:
    """Show a template's current text and the variables it may use.

    \b
    Examples:
      eddymail template show registration
      eddymail template show reply --language ru --json
    """
    detail = template_service.show_template(name, language)
    state().output.emit({"template": detail}, lambda: _render_detail(detail))


@template_group.command("edit")
@click.argument("name")
@click.option("--language", type=LANGUAGE, help=LANGUAGE_HELP)
@click.option(
    "--file",
    "source_file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    help="Take the new text from this file ('-': stdin) instead of opening $EDITOR.",
)
@json_option
@with_database
def edit(name: str, language: str | None, source_file: Path | None) -> None:
    """Change a template's text in $EDITOR (or from --file).

    The text is checked before it is saved: a syntax error or a variable the template
    does not offer is refused with its line number, and nothing is saved. An unchanged
    or empty text saves nothing. The template stays switched on or off as it was.

    \b
    Examples:
      eddymail template edit ticket_created
      eddymail template edit registration --language ru
      eddymail template edit reply --file reply.txt
    """
    out = state().output
    current = template_service.show_template(name, language)
    if source_file is not None:
        detail = template_service.save_template(name, current.language, _read(source_file))
        _saved(detail)
        return
    text = current.source
    while True:
        edited = _edit(text)
        if edited is None or edited.strip() == current.source.strip():
            out.info("No changes; nothing saved.")
            out.emit({"template": current, "saved": False})
            return
        if not edited.strip():
            raise EddymailError(
                "The text is empty; nothing saved.",
                hint=f"To go back to the shipped text: eddymail template reset {name}; "
                f"to stop sending it: eddymail template disable {name}.",
            )
        try:
            # ``expected``: refuse to overwrite a colleague's save made while we edited.
            detail = template_service.save_template(
                name, current.language, edited, expected=current.source
            )
        except ValidationError as error:
            if not _may_ask():
                raise
            out.error(error.message, error.hint)
            if not click.confirm("Edit again?", default=True, err=True):
                # Already reported above; an empty message keeps it from being said twice.
                raise ValidationError("") from None
            text = edited
            continue
        _saved(detail)
        return


@template_group.command("enable")
@click.argument("name")
@json_option
@with_database
def enable(name: str) -> None:
    """Switch a notification back on (in every language).

    \b
    Example:
      eddymail template enable registration
    """
    item = template_service.set_enabled(name, True)
    out = state().output
    out.emit(
        {"template": item},
        lambda: out.success(f"Notification {item.name} is switched on."),
    )


@template_group.command("disable")
@click.argument("name")
@json_option
@with_database
def disable(name: str) -> None:
    """Switch a notification off (in every language): it is no longer sent.

    The edited text is kept for when it is switched on again. `reply` and
    `test_letter` cannot be switched off.

    \b
    Example:
      eddymail template disable registration
    """
    item = template_service.set_enabled(name, False)
    out = state().output
    out.emit(
        {"template": item},
        lambda: out.success(
            f"Notification {item.name} is switched off; "
            f"eddymail template enable {item.name} turns it back on."
        ),
    )


@template_group.command("reset")
@click.argument("name")
@click.option("--language", type=LANGUAGE, help=LANGUAGE_HELP)
@click.option("--all-languages", is_flag=True, help="Reset the text in every language.")
@json_option
@with_database
def reset(name: str, language: str | None, all_languages: bool) -> None:
    """Go back to the shipped text, dropping the edits (the on/off switch is kept).

    \b
    Examples:
      eddymail template reset ticket_created
      eddymail template reset registration --all-languages
    """
    if language and all_languages:
        raise click.UsageError("Give either --language or --all-languages, not both.")
    result = template_service.reset_template(name, language, all_languages=all_languages)
    out = state().output

    def render() -> None:
        if result.restored:
            out.success(
                f"Template {result.name} is back to the shipped text "
                f"({', '.join(result.restored)})."
            )
        else:
            out.line(
                f"Template {result.name} already uses the shipped text "
                f"({', '.join(result.languages)}); nothing to reset."
            )

    out.emit({"reset": result}, render)


@template_group.command("preview")
@click.argument("name")
@click.option("--ticket", "ticket_id", type=int, help="Use this ticket's real values.")
@click.option("--language", type=LANGUAGE, help=LANGUAGE_HELP)
@agent_option
@json_option
@with_database
def preview(name: str, ticket_id: int | None, language: str | None) -> None:
    """Show a template as its reader (a customer, or an agent) would receive it.

    With --ticket the values come from that ticket (staff templates: as the agent
    given with --as would receive them); without it, from sample data.

    \b
    Examples:
      eddymail template preview ticket_created
      eddymail template preview reply --ticket 42 --json
    """
    result = template_service.preview_template(name, language, ticket_id=ticket_id,
                                               actor=_actor_if_known())
    out = state().output
    if not result.enabled:
        out.warning(
            f"Notification {result.template} is switched off, so this mail is not being "
            f"sent (eddymail template enable {result.template})."
        )

    def render() -> None:
        out.fields([("Subject", result.subject)])
        out.line("")
        out.text(result.body.rstrip("\n"))

    out.emit(result, render)


def _actor_if_known() -> Actor:
    """The acting agent for a preview; a preview needs nobody, so no identity is fine."""
    try:
        return state().actor()
    except EddymailError:
        return ANONYMOUS


def _saved(detail: TemplateDetail) -> None:
    out = state().output
    how = "customised text" if detail.customised else "the shipped text"
    out.emit(
        {"template": detail, "saved": True},
        lambda: out.success(f"Template {detail.name} ({detail.language}) saved: {how}."),
    )


def _read(path: Path) -> str:
    """The text of ``--file``: a UTF-8 file, or stdin for ``-``."""
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError(f"{path} is not UTF-8 text; nothing saved.") from None
    except OSError as error:
        raise EddymailError(f"Cannot read {path}: {error.strerror}.") from None


def _edit(text: str) -> str | None:
    """The text after $EDITOR, or None when the editor was left without saving."""
    try:
        return click.edit(text, extension=".txt")
    except UnicodeDecodeError:
        raise ValidationError("The editor saved text that is not UTF-8; nothing saved.") from None


def _may_ask() -> bool:
    # Only a person at a terminal can answer "Edit again?"; scripts get the error and exit 2.
    return sys.stdin.isatty() and not state().output.json_mode
