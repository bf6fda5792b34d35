"""``eddymail settings``: team-wide settings kept in the database."""

from __future__ import annotations

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.services import settings


@click.group("settings")
def settings_group() -> None:
    """Team-wide settings stored in the database.

    \b
    Examples:
      eddymail settings set system-channel support
      eddymail settings list --json
    """


@settings_group.command("list")
@json_option
@with_database
def list_() -> None:
    """List every setting with its value and default.

    \b
    Example:
      eddymail settings list
    """
    items = settings.list_settings()
    out = state().output
    out.emit(
        {"settings": items},
        lambda: out.table(
            ["Setting", "Value", "Default", "Meaning"],
            [
                [
                    s.key,
                    s.value if not s.is_default else f"{s.value} (default)".strip(),
                    s.default or "-",
                    s.description,
                ]
                for s in items
            ],
            wrap=("Meaning",),
        ),
    )


@settings_group.command("get")
@click.argument("key")
@json_option
@with_database
def get(key: str) -> None:
    """Print one setting's value.

    \b
    Example:
      eddymail settings get system-channel
    """
    item = settings.get_setting(key)
    out = state().output
    out.emit({"setting": item}, lambda: out.line(item.value))


@settings_group.command("set")
@click.argument("key")
@click.argument("value")
@json_option
@with_database
def set_(key: str, value: str) -> None:
    """Change a setting; an empty VALUE restores the default.

    \b
    Examples:
      eddymail settings set system-channel support
      eddymail settings set language ru
      eddymail settings set system-channel ""
    """
    item = settings.set_setting(key, value)
    out = state().output
    shown = item.value or "(empty)"
    out.emit({"setting": item}, lambda: out.success(f"{item.key} = {shown}"))
