"""``eddymail channel``: mailboxes, their servers and passwords."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.cli.channel_auth import (
    authorize,
    check_sign_in_flags,
    network_timeout,
    oauth_options,
    read_stdin_secrets,
    render_authorization,
    run_authorization,
    sign_in_fields,
)
from eddymail.errors import EddymailError, PartialFailure, ValidationError
from eddymail.presets import PRESETS
from eddymail.services.channels import check as channel_test
from eddymail.services.channels import drafts as channel_settings
from eddymail.services.channels import registry as channels
from eddymail.services.channels import signin
from eddymail.services.channels.drafts import AFTER_FETCH, PROTOCOLS, SECURITIES
from eddymail.services.channels.registry import ChannelInfo
from eddymail.services.fetch import start as starting

SECURITY = click.Choice(SECURITIES, case_sensitive=False)


@click.group("channel")
def channel_group() -> None:
    """Channels: mailboxes attached to departments.

    \b
    Examples:
      eddymail channel add support --department Support --email help@gmail.com --preset gmail
      eddymail channel test --all
    """


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


def _options(values: dict[str, Any]) -> channel_settings.ChannelOptions:
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


@channel_group.command("add")
@click.argument("name")
@settings_options
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--no-notify", is_flag=True,
              help="Send no notification for the first import's mail (--no-notify-initial).")
@click.option("--no-connect", is_flag=True,
              help="Do not contact the server now; the first fetch records the starting point.")
@click.option("--refresh-token-stdin", is_flag=True,
              help="--auth oauth2: read a refresh token from stdin instead of signing in "
              "(after the client secret, when both are given).")
@json_option
@with_database
def add(name: str, password_stdin: bool, no_notify: bool, no_connect: bool,
        refresh_token_stdin: bool, oauth_client_secret_stdin: bool, **values: Any) -> None:
    """Add a mailbox to a department.

    With a preset (or an address at a known provider) only the address and the password
    remain to be typed. The password goes to the system keyring, never to the database.

    The first import (how much of the mail already there becomes tickets) is asked for on a
    terminal, or given with --initial and --no-notify; the starting point is then recorded
    at once, so mail that arrives or that someone reads before the first fetch is still
    taken. Without either, a script's channel gets 100 and the first fetch decides.

    With --auth oauth2 the mailbox signs in with OAuth 2.0 instead (Microsoft 365, Google,
    Yandex, or any provider named with --oauth-*-url); at a terminal, add offers to sign
    in right away (see eddymail channel authorize), before the starting point is recorded.

    \b
    Examples:
      eddymail channel add support --department Support --email help@gmail.com
      eddymail channel add support --department Support --email help@example.com \\
          --host mail.example.com --smtp-host mail.example.com --initial 20 --no-notify
      printf '%s\\n' "$APP_PASSWORD" | eddymail channel add billing --department Accounting \\
          --email billing@example.com --host mail.example.com --smtp-host mail.example.com \\
          --initial "since 2026-11-01" --password-stdin
      eddymail channel add desk --department Support --email desk@contoso.com \\
          --preset outlook --auth oauth2 --oauth-client-id APP-ID --oauth-tenant contoso.com
    """
    app = state()
    out = app.output
    if no_notify:
        if values.get("notify_initial"):
            raise click.UsageError("Give --no-notify or --notify-initial, not both.")
        values["notify_initial"] = False
    asked = (values.get("initial") is None and values.get("notify_initial") is None
             and not no_connect and _may_ask(password_stdin))
    options = _options(values)
    if password_stdin and options.password_command:
        raise click.UsageError("Give either --password-stdin or --password-command, not both.")
    draft = channel_settings.resolve_channel(name, options)
    oauth = draft.auth_method == "oauth2"
    check_sign_in_flags(oauth, password_stdin, refresh_token_stdin, oauth_client_secret_stdin)
    given = read_stdin_secrets(*[flag for flag, on in (
        ("oauth-client-secret-stdin", oauth_client_secret_stdin),
        ("refresh-token-stdin", refresh_token_stdin)) if on]) if oauth else {}
    if draft.preset_hint:
        out.info(draft.preset_hint)
    password = read_password(password_stdin, draft.name) if draft.needs_password else None
    if asked and draft.protocol != "none":
        draft = _ask_first_import(draft)
    saved = channels.create_channel(draft, password, given.get("oauth-client-secret-stdin"))
    authorization = _sign_in_after_add(saved.channel.name, oauth, draft, given)
    # A token is needed to reach the mailbox; without one the first fetch records it.
    signed_in = not oauth or authorization is not None or bool(draft.password_command)
    record_now = draft.protocol != "none" and not no_connect and signed_in and (
        asked or values.get("initial") is not None or values.get("notify_initial") is not None)
    begun = (starting.record_starting_point(
        draft.name, timeout=float(app.runtime.config.get("network", "timeout")))
        if record_now else None)

    def render() -> None:
        out.success(f"Channel {saved.channel.name} added to {saved.channel.department}.")
        if saved.became_outgoing:
            out.line(
                f"Replies of {saved.channel.department} will be sent from {saved.channel.email}."
            )
        if authorization is not None:
            render_authorization(authorization)
        elif not signed_in:
            out.line(f"Sign it in with: eddymail channel authorize {saved.channel.name}")
        if begun is not None and begun.recorded:
            out.line(f"Starting point recorded: the first fetch takes {begun.initial} "
                     "message(s) already there, and everything that arrives from now on.")
        out.line(f"Check it with: eddymail channel test {saved.channel.name}")

    if begun is not None and not begun.recorded:
        out.warning(f"Could not reach the mailbox to record its starting point ({begun.error}); "
                    "the first fetch records it instead.")
    out.emit(
        {
            "channel": saved.channel,
            "preset_hint": draft.preset_hint,
            "became_outgoing": saved.became_outgoing,
            "starting_point": begun,
            "authorization": authorization,
        },
        render,
    )


def _sign_in_after_add(name: str, oauth: bool, draft: channel_settings.ChannelDraft,
                       given: dict[str, str]) -> signin.AuthorizationResult | None:
    """An OAuth channel's first tokens: the refresh token a script gave, or (at a terminal,
    if the person says so) a sign-in flow; None when neither happened."""
    try:
        if "refresh-token-stdin" in given:
            return signin.import_refresh_token(name, given["refresh-token-stdin"],
                                               timeout=network_timeout())
        if oauth and not draft.password_command and _may_ask(False) and click.confirm(
                f"Sign channel {name} in now?", default=True, err=True):
            return run_authorization(name, None, False, network_timeout())
    except EddymailError as error:
        error.message = f"Channel {name} was added, but signing it in failed: {error.message}"
        raise
    return None


def _may_ask(password_stdin: bool) -> bool:
    """Only a person at a terminal can answer questions (not a pipe, not --json)."""
    return not password_stdin and sys.stdin.isatty() and not state().output.json_mode


def _ask_first_import(draft: channel_settings.ChannelDraft) -> channel_settings.ChannelDraft:
    """Ask how much of the mail already in the mailbox becomes tickets, and whether to notify."""
    while True:
        answer = click.prompt(
            "First import: how much of the mail already in the mailbox becomes tickets? "
            "N (the last N unread), all, none, or since YYYY-MM-DD", default="100")
        try:
            first = channel_settings.parse_initial(answer)
            if first.since is not None and draft.protocol == "pop3":
                raise ValidationError(channel_settings.POP3_HAS_NO_DATES)
            break
        except ValidationError as error:
            state().output.warning(error.message)
    notify = click.confirm("Send notifications (registration mail to customers, notices to "
                           "agents) for those messages?", default=False)
    return dataclasses.replace(draft, initial_limit=first.limit, initial_since=first.since,
                               notify_initial=notify)


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
    """
    out = state().output
    secret = read_stdin_secrets("oauth-client-secret-stdin")["oauth-client-secret-stdin"] \
        if oauth_client_secret_stdin else None
    saved = channels.edit_channel(name, _options(values), new_name=new_name,
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


channel_group.add_command(authorize)


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


@channel_group.command("test")
@click.argument("names", nargs=-1)
@click.option("--all", "all_channels", is_flag=True, help="Test every enabled channel.")
@click.option("--no-send", is_flag=True, help="Only log in to SMTP; send no test letter.")
@click.option("--timeout", type=float, help="Seconds per network step (default from config).")
@json_option
@with_database
def test(names: tuple[str, ...], all_channels: bool, no_send: bool, timeout: float | None) -> None:
    """Check that channels can receive and send mail (a CI-friendly connection check).

    Incoming: connect, verify TLS, log in, open the folder (IMAP) or count messages (POP3).
    Outgoing: connect, verify TLS, log in and send a test letter to the mailbox itself.
    Failures go to the error log (eddymail log) with the server's answer and a hint.
    Exit code 0 when every check passed, 3 when any failed.

    A password kept unencrypted on disk (keyring's PlaintextKeyring, which it picks
    silently where no desktop keyring exists) adds a "keyring" row marked WARNING
    (JSON: ok false, warning true); it does not change the exit code, since mail flows.

    \b
    Examples:
      eddymail channel test support
      eddymail channel test --all --no-send --json
    """
    if names and all_channels:
        raise click.UsageError("Name channels or give --all, not both.")
    app = state()
    out = app.output
    limit = timeout or float(app.runtime.config.get("network", "timeout"))
    selected = channel_test.channels_to_test(list(names))
    if not selected:
        raise click.UsageError("There are no enabled channels to test.")
    results = []
    for channel_name in selected:
        # Progress is for a person at a terminal; cron gets one line per failure only.
        if not out.json_mode and not out.quiet and out.stderr.is_terminal:
            out.stderr.print(f"Testing {channel_name}…", style="dim", markup=False)
        results.append(channel_test.test_channel(channel_name, send=not no_send, timeout=limit))
    out.emit({"channels": results}, lambda: _render_tests(results))
    if not all(result.ok for result in results):
        failed = ", ".join(result.name for result in results if not result.ok)
        raise PartialFailure(f"Channel test failed for: {failed} (details: eddymail log).")


def _render_tests(results: list[channel_test.ChannelTestResult]) -> None:
    out = state().output
    rows = []
    for result in results:
        for check in result.checks:
            rows.append(
                [
                    result.name,
                    check.check,
                    "ok" if check.ok else "WARNING" if check.warning else "FAILED",
                    check.answer,
                    check.hint or "",
                ]
            )
    out.table(
        ["Channel", "Check", "Result", "Server answer", "Hint"], rows,
        wrap=("Server answer", "Hint"),
    )
