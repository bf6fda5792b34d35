"""The server and password options that ``channel add`` and ``channel edit`` share."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from eddymail.cli.channel_auth import oauth_options
from eddymail.presets import PRESETS
from eddymail.services.channels import drafts as channel_settings
from eddymail.services.channels.drafts import AFTER_FETCH, PROTOCOLS, SECURITIES

SECURITY = click.Choice(SECURITIES, case_sensitive=False)


def settings_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The server options shared by ``channel add`` and ``channel edit``."""
    options = [
        click.option("--department", help="Department whose tickets this mailbox feeds."),
        click.option("--email", help="The mailbox's e-mail address."),
        click.option("--display-name", help="Name shown in From: of mail sent from it."),
        click.option(
            "--preset",
            help="Provider preset: "
            + ", ".join(p.key for p in PRESETS)
            + " (detected from the address when no server is given).",
        ),
        click.option(
            "--protocol",
            type=click.Choice(PROTOCOLS, case_sensitive=False),
            help="Incoming protocol (none: outgoing only).",
        ),
        click.option("--host", help="Incoming (IMAP/POP3) server."),
        click.option("--port", type=int, help="Incoming port (default from the security)."),
        click.option("--security", type=SECURITY, help="Incoming connection security."),
        click.option("--login", help="Login name (default: the e-mail address)."),
        click.option("--folder", help="IMAP folder to fetch from (default INBOX)."),
        click.option("--smtp-host", help="Outgoing (SMTP) server."),
        click.option("--smtp-port", type=int, help="Outgoing port (default from the security)."),
        click.option("--smtp-security", type=SECURITY, help="Outgoing connection security."),
        click.option("--smtp-login", help="SMTP login (default: the incoming login)."),
        click.option(
            "--ca-file",
            type=click.Path(dir_okay=False),
            help="PEM file of a CA to trust besides the system's (company servers).",
        ),
        click.option(
            "--password-command",
            help="Command that prints the password (run without a shell), instead "
            "of the keyring: e.g. 'pass show mail/support'.",
        ),
        click.option(
            "--after-fetch",
            type=click.Choice(AFTER_FETCH, case_sensitive=False),
            help="What fetch does with a message once stored (default mark_read).",
        ),
        click.option("--move-to", "move_to_folder", help="Folder for --after-fetch move."),
        click.option(
            "--unread-only/--include-read",
            "unread_only",
            default=None,
            help="Take only unread mail (the classic rule), or also new mail someone "
            "already read in webmail (default).",
        ),
        click.option(
            "--initial",
            help="First import: the last N unread messages, 'all', 'none' or "
            "'since YYYY-MM-DD' (read or not); default 100. On channel add it also records "
            "the starting point at once.",
        ),
        click.option(
            "--notify-initial/--no-notify-initial",
            "notify_initial",
            default=None,
            help="Send notifications for the first fetch's mail (default: yes).",
        ),
        click.option(
            "--authserv-id",
            help="Authentication-Results id of the mail provider "
            "that is trusted for sender verification.",
        ),
    ]
    function = oauth_options(function)  # innermost: listed after the server options
    for option in reversed(options):
        function = option(function)
    return function


def options_from(values: dict[str, Any]) -> channel_settings.ChannelOptions:
    """The :func:`settings_options` a command received, as the service's options."""
    values = {**values, "oauth_scopes": tuple(values.get("oauth_scopes") or ()) or None}
    return channel_settings.ChannelOptions(
        **{
            key: value
            for key, value in values.items()
            if key in channel_settings.ChannelOptions.__dataclass_fields__
        }
    )


def read_password(password_stdin: bool, channel_name: str) -> str:
    """The password from stdin (``--password-stdin``) or a hidden prompt asked twice."""
    if password_stdin:
        text = sys.stdin.read()
        # Exactly one line ending is the pipe's, anything else belongs to the password.
        for ending in ("\r\n", "\n"):
            if text.endswith(ending):
                text = text[: -len(ending)]
                break
        if not text:
            raise click.UsageError("--password-stdin read an empty password.")
        return text
    if not sys.stdin.isatty():
        raise click.UsageError(
            "No terminal to ask for the password: pipe it in with --password-stdin, or use "
            "--password-command."
        )
    return click.prompt(
        f"Password for channel {channel_name}", hide_input=True, confirmation_prompt=True
    )
