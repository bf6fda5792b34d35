"""``eddymail channel``: mailboxes, their servers and passwords.

``add``, ``test`` and ``authorize`` live in their own modules (channel_add, channel_test,
channel_auth); the options ``add`` and ``edit`` share are in channel_options.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.cli.channel_add import add
from eddymail.cli.channel_auth import authorize, read_stdin_secrets, sign_in_fields
from eddymail.cli.channel_options import options_from, read_password, settings_options
from eddymail.cli.channel_test import test
from eddymail.presets import PRESETS
from eddymail.services.channels import registry as channels
from eddymail.services.channels.registry import ChannelInfo


@click.group("channel")
def channel_group() -> None:
    """Channels: mailboxes attached to departments.

    \b
    Examples:
      eddymail channel add support --department Support --email help@gmail.com --preset gmail
      eddymail channel test --all
    """


def render_channel(info: ChannelInfo) -> None:
    """The ``channel show`` view."""
    incoming = (
        f"{info.protocol.upper()} {info.host}:{info.port} ({info.security}), login {info.login}"
        + (f", folder {info.folder}" if info.protocol == "imap" else "")
        if info.protocol != "none"
        else "(none)"
    )
    outgoing = (
        f"SMTP {info.smtp_host}:{info.smtp_port} ({info.smtp_security}), login {info.smtp_login}"
        if info.smtp_host
        else "(none)"
    )
    password = {
        "keyring": "in the keyring",
        "command": "from command: " + " ".join(info.password_command or []),
        "none": "(not needed)",
    }[info.password_source]
    sign_in = sign_in_fields(info)
    if info.oauth is not None:
        password = ""
    roles = [
        role
        for role, on in (
            ("outgoing channel of its department", info.outgoing_for_department),
            ("system-channel (sends system notifications)", info.system_channel),
        )
        if on
    ]
    state().output.fields(
        [
            ("Name", info.name),
            ("Department", info.department),
            ("Address", f"{info.display_name} <{info.email}>" if info.display_name else info.email),
            ("Enabled", info.enabled),
            ("Preset", info.preset or "-"),
            ("Incoming", incoming),
            ("Outgoing", outgoing),
            ("CA file", info.ca_file or "-"),
            *sign_in,
            *([("Password", password)] if password else []),
            (
                "After fetch",
                info.after_fetch
                + (f" → {info.move_to_folder}" if info.after_fetch == "move" else ""),
            ),
            ("Mail taken", "unread only" if info.unread_only else "new mail, read or not"),
            (
                "First fetch",
                f"last {info.initial} unread" if info.initial.isdigit() else info.initial,
            ),
            ("Starting point", info.started_at or "taken at the first fetch"),
            ("Notify on first fetch", info.notify_initial),
            ("Roles", ", ".join(roles) or "-"),
            ("Connected", info.connected_at or "not fetched yet"),
        ],
        title=f"Channel {info.name}",
    )


@channel_group.command("edit")
@click.argument("name")
@click.option("--name", "new_name", help="A new name for the channel.")
@settings_options
@click.option("--enable/--disable", "enabled", default=None, help="Include it in fetch or not.")
@json_option
@with_database
def edit(name: str, new_name: str | None, oauth_client_secret_stdin: bool,
         **values: Any) -> None:
    """Change a channel's settings (only the options given change).

    \b
    Examples:
      eddymail channel edit support --security starttls --port 143
      eddymail channel edit support --after-fetch move --move-to Processed
      printf '%s\\n' "$CLIENT_SECRET" | eddymail channel edit support --auth oauth2 \\
          --oauth-client-id APP-ID --oauth-client-secret-stdin
    """
    out = state().output
    secret = read_stdin_secrets("oauth-client-secret-stdin")["oauth-client-secret-stdin"] \
        if oauth_client_secret_stdin else None
    saved = channels.edit_channel(name, options_from(values), new_name=new_name,
                                  client_secret=secret)
    out.emit(
        {"channel": saved.channel}, lambda: out.success(f"Channel {saved.channel.name} updated.")
    )


@channel_group.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@with_database
def password(name: str, password_stdin: bool) -> None:
    """Store a new password for a channel in the keyring.

    \b
    Example:
      eddymail channel password support
    """
    channel = channels.show_channel(name)
    secret = read_password(password_stdin, channel.name)
    channels.set_password(channel.name, secret)
    state().output.success(f"Password of channel {channel.name} stored in the keyring.")


@channel_group.command("list")
@click.option("--department", help="Only this department's channels.")
@json_option
@with_database
def list_(department: str | None) -> None:
    """List channels.

    \b
    Example:
      eddymail channel list --department Support
    """
    items = channels.list_channels(department)
    out = state().output

    def incoming(info: ChannelInfo) -> str:
        return f"{info.protocol} {info.host}:{info.port}" if info.protocol != "none" else "-"

    out.emit(
        {"channels": items},
        lambda: out.table(
            ["Name", "Department", "Address", "Incoming", "Outgoing", "Enabled"],
            [
                [
                    c.name,
                    c.department,
                    c.email,
                    incoming(c),
                    f"{c.smtp_host}:{c.smtp_port}" if c.smtp_host else "-",
                    c.enabled,
                ]
                for c in items
            ],
            empty="No channels yet: eddymail channel add NAME --department DEPT --email ADDR",
        ),
    )


@channel_group.command("show")
@click.argument("name")
@json_option
@with_database
def show(name: str) -> None:
    """Show a channel's settings (never its password).

    \b
    Example:
      eddymail channel show support --json
    """
    info = channels.show_channel(name)
    state().output.emit({"channel": info}, lambda: render_channel(info))


@channel_group.command("remove")
@click.argument("name")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@with_database
def remove(name: str, yes: bool) -> None:
    """Remove a channel and its stored password; its tickets stay.

    \b
    Example:
      eddymail channel remove old-support --yes
    """
    channel = channels.show_channel(name)
    if not yes and sys.stdin.isatty():
        click.confirm(f"Remove channel {channel.name} <{channel.email}>?", abort=True)
    channels.remove_channel(channel.name)
    out = state().output
    out.emit({"removed": channel.name}, lambda: out.success(f"Channel {channel.name} removed."))


@channel_group.command("presets")
@json_option
def presets() -> None:
    """List the mail provider presets: servers, and what each provider requires.

    \b
    Example:
      eddymail channel presets --json
    """
    out = state().output

    def render() -> None:
        for index, preset in enumerate(PRESETS):
            if index:
                out.line("")
            password = "app password required" if preset.app_password else "account password"
            out.line(f"{preset.key} · {preset.name} · {password}", style="bold")
            for protocol, server in (("IMAP", preset.imap), ("POP3", preset.pop3),
                                     ("SMTP", preset.smtp)):
                if server is not None:
                    out.block(f"{protocol}  {server.host}:{server.port} {server.security}",
                              indent=2)
            if preset.oauth:
                out.block(f"OAuth 2.0  {preset.oauth.flow} flow, "
                          f"{'/'.join(preset.oauth.mechanisms)}", indent=2)
            out.block(preset.hint, indent=2, style="dim")

    out.emit({"presets": list(PRESETS)}, render)


channel_group.add_command(add)
channel_group.add_command(test)
channel_group.add_command(authorize)
