"""``eddymail channel add``: a new mailbox, its password or sign-in, and its first import."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.cli.channel_auth import (
    check_sign_in_flags,
    network_timeout,
    read_stdin_secrets,
    render_authorization,
    run_authorization,
)
from eddymail.cli.channel_options import options_from, read_password, settings_options
from eddymail.errors import EddymailError, ValidationError
from eddymail.services.channels import drafts as channel_settings
from eddymail.services.channels import registry as channels
from eddymail.services.channels import signin
from eddymail.services.fetch import start as starting


@click.command("add")
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
    options = options_from(values)
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
