"""Signing channels in with OAuth 2.0: ``channel authorize`` and the ``--auth``/``--oauth-*``
options of ``channel add|edit``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.services.channels import signin
from eddymail.services.channels.drafts import AUTH_METHODS
from eddymail.services.channels.registry import ChannelInfo
from eddymail.services.oauth.flows import DevicePrompt
from eddymail.services.oauth.settings import FLOWS


def oauth_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The sign-in options shared by ``channel add`` and ``channel edit``."""
    options = [
        click.option("--auth", type=click.Choice(AUTH_METHODS, case_sensitive=False),
                     help="Sign in with a password (default) or OAuth 2.0 (oauth2)."),
        click.option("--oauth-client-id",
                     help="Client id of the app you registered at the provider (or set "
                     "client_id in [oauth.PROVIDER] of the config file)."),
        click.option("--oauth-tenant",
                     help="Microsoft 365: the tenant's domain or id (default: common)."),
        click.option("--oauth-authorize-url", help="Authorization endpoint (no preset)."),
        click.option("--oauth-token-url", help="Token endpoint (no preset)."),
        click.option("--oauth-device-url", help="Device authorization endpoint (no preset)."),
        click.option("--oauth-scope", "oauth_scopes", multiple=True,
                     help="A scope to ask for; repeat it for several (default: the preset's)."),
        click.option("--oauth-client-secret-stdin", is_flag=True,
                     help="Read the app's client secret from stdin (kept in the keyring)."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def check_sign_in_flags(oauth: bool, password_stdin: bool, refresh_token_stdin: bool,
                        client_secret_stdin: bool) -> None:
    """Refuse stdin flags that do not go with the channel's sign-in method."""
    if oauth and password_stdin:
        raise click.UsageError("An --auth oauth2 channel signs in with tokens, not a password: "
                               "use --refresh-token-stdin, or sign in afterwards with "
                               "eddymail channel authorize.")
    if not oauth and (refresh_token_stdin or client_secret_stdin):
        raise click.UsageError("--refresh-token-stdin and --oauth-client-secret-stdin go with "
                               "--auth oauth2.")


def network_timeout() -> float:
    """Seconds per network step, from the configuration."""
    return float(state().runtime.config.get("network", "timeout"))


def sign_in_fields(info: ChannelInfo) -> list[tuple[str, Any]]:
    """The sign-in rows of ``channel show`` (never a token or a secret)."""
    oauth = info.oauth
    if oauth is None:
        return [("Sign-in", "password")]
    if info.password_command:
        tokens = "from command: " + " ".join(info.password_command)
    elif oauth.authorized:
        tokens = "in the keyring"
    else:
        tokens = f"none yet: eddymail channel authorize {info.name}"
    return [
        ("Sign-in", f"OAuth 2.0 at {oauth.provider} ({oauth.flow} flow; "
         f"{', '.join(oauth.mechanisms)})"),
        ("Client id", oauth.client_id or "-"),
        ("Tenant", oauth.tenant or "-"),
        ("Token endpoint", oauth.token_url),
        ("Scopes", " ".join(oauth.scopes) or "(the server's default)"),
        ("Client secret", "in the keyring" if oauth.client_secret_stored else "-"),
        ("Tokens", tokens),
    ]


def read_stdin_secrets(*names: str) -> dict[str, str]:
    """One line of stdin for each flag named, in this order (e.g. a client secret, then a
    refresh token); an empty one is a usage error. Reads nothing when no flag is named: stdin
    then still belongs to the questions asked later."""
    if not names:
        return {}
    lines = sys.stdin.read().splitlines()
    values: dict[str, str] = {}
    for index, name in enumerate(names):
        value = lines[index].strip() if index < len(lines) else ""
        if not value:
            raise click.UsageError(f"--{name} read nothing from stdin (line {index + 1}).")
        values[name] = value
    return values


class TerminalInteraction:
    """The person at the terminal, as the sign-in flows reach them (prompts on stderr)."""

    def __init__(self) -> None:
        self.out = state().output

    def show_device(self, prompt: DevicePrompt) -> None:
        """Where to sign in and the code to type."""
        minutes = max(1, round(prompt.expires_in / 60))
        self.out.ask(f"To sign in, open {prompt.verification_uri} in a browser on any device "
                     f"and enter the code {prompt.user_code} (valid for {minutes} minutes).")
        if prompt.verification_uri_complete:
            self.out.ask(f"(or open {prompt.verification_uri_complete} directly)")
        self.out.ask("Waiting for the sign-in…")

    def show_url(self, url: str, browser: bool) -> None:
        """The authorization URL and what to do with it."""
        if browser:
            self.out.ask(f"A browser should open to sign in; if it does not, open:\n{url}")
            return
        self.out.ask("Open this address in a browser on any machine and sign in:\n"
                     f"{url}\nThe browser then goes to an address starting with http://127.0.0.1 "
                     "or http://localhost that may show an error page: copy that whole address "
                     "from the address bar and paste it here.")

    def open_browser(self, url: str) -> bool:
        """Open ``url`` in this machine's graphical browser; False when there is none."""
        return open_browser(url)

    def read_redirect(self) -> str:
        """The address the user pastes (one line of stdin)."""
        self.out.ask("Address:")
        line = sys.stdin.readline()
        if not line.strip():
            raise click.UsageError("No address was pasted; nothing was stored.")
        return line


def open_browser(url: str) -> bool:
    """Open ``url`` in a graphical browser, never a console one that would take over the
    terminal we are prompting in (Python's webbrowser falls back to lynx or w3m)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY")
                                                 or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import webbrowser

    try:
        return webbrowser.open(url, new=1)
    except webbrowser.Error:
        return False


def run_authorization(name: str, flow: str | None, no_browser: bool,
                      timeout: float) -> signin.AuthorizationResult:
    """Run the sign-in flow for a channel (a browser only where one can open)."""
    return signin.authorize_channel(name, interaction=TerminalInteraction(), flow=flow,
                                    no_browser=no_browser, timeout=timeout)


def render_authorization(result: signin.AuthorizationResult) -> None:
    """Say what was stored (never the tokens)."""
    out = state().output
    out.success(f"Channel {result.channel} is signed in at {result.provider} "
                f"({result.flow}); the tokens are in the keyring.")
    if result.scopes:
        out.line(f"Granted scopes: {' '.join(result.scopes)}")
    if not result.refresh_token:
        out.warning("The provider granted no refresh token, so this sign-in ends when the "
                    "access token expires; ask for offline access (the offline_access scope "
                    "at most providers).")


@click.command("authorize")
@click.argument("name")
@click.option("--flow", type=click.Choice(FLOWS, case_sensitive=False),
              help="device (a code to type on any device) or code (a browser sign-in); "
              "default: what the provider supports for mail.")
@click.option("--no-browser", is_flag=True,
              help="Code flow on a machine without a browser: print the address to open "
              "elsewhere and read back the address the browser was sent to.")
@click.option("--refresh-token-stdin", is_flag=True,
              help="Take a refresh token from stdin instead of signing in (for scripts).")
@click.option("--timeout", type=float, help="Seconds per network step (default from config).")
@json_option
@with_database
def authorize(name: str, flow: str | None, no_browser: bool, refresh_token_stdin: bool,
              timeout: float | None) -> None:
    """Sign a channel in with OAuth 2.0 and keep its tokens in the keyring.

    The device flow prints an address and a code to enter on any device; the code flow
    opens a browser (or, with --no-browser, prints the address to open on any machine and
    reads back the address the browser ends up at). Run it again whenever the provider
    revoked the sign-in.

    \b
    Examples:
      eddymail channel authorize support
      eddymail channel authorize support --flow code --no-browser
      printf '%s\\n' "$REFRESH_TOKEN" | eddymail channel authorize support --refresh-token-stdin
    """
    app = state()
    limit = timeout or network_timeout()
    if refresh_token_stdin:
        if flow or no_browser:
            raise click.UsageError("--refresh-token-stdin signs in without a flow; give no "
                                   "--flow or --no-browser with it.")
        token = read_stdin_secrets("refresh-token-stdin")["refresh-token-stdin"]
        result = signin.import_refresh_token(name, token, timeout=limit)
    else:
        result = run_authorization(name, flow, no_browser, limit)
    app.output.emit({"authorization": result}, lambda: render_authorization(result))
