"""A channel's tokens: kept in the keyring, refreshed shortly before they expire, under a lock.

The keyring entry ``NAME:oauth-tokens`` holds one JSON document (refresh token, access token,
its expiry and the granted scopes), so a rotated refresh token and the access token that came
with it are written in one step. Refreshing happens under a per-channel file lock: a second
process that needs a token at the same moment waits, reads the entry again and uses what
the first one stored, instead of spending the old refresh token a second time (which a
provider that rotates refresh tokens answers by revoking the whole grant).

A channel with ``--password-command`` gets its refresh token, or an access token, from the
command instead (see :func:`classify_command_output`); what is refreshed from it lives only
in this process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import filelock

from eddymail import secrets
from eddymail.config import default_data_dir
from eddymail.errors import AuthorizationRequired, OAuthError, SecretError
from eddymail.services.oauth import diagnosis
from eddymail.services.oauth.endpoint import TokenEndpoint, TokenSet
from eddymail.services.oauth.settings import OAuthSettings

log = logging.getLogger("eddymail.oauth")

TOKENS, CLIENT_SECRET = "oauth-tokens", "oauth-client-secret"
#: Seconds before its expiry that an access token is replaced: covers clock skew and a
#: login that happens a little after the check.
LEEWAY = 300.0
#: Seconds to wait for another process's refresh of the same channel.
LOCK_TIMEOUT = 120.0
#: The clock for token expiry; tests replace it to let an hour pass at once.
clock: Callable[[], float] = time.time

# Tokens refreshed from a password command's refresh token, for the rest of this process.
_from_commands: dict[tuple[str, str], TokenSet] = {}


@dataclass(frozen=True)
class AccessToken:
    """An access token to sign in with, and where it came from.

    ``fresh`` is true when it was granted during this call: a server refusing it is not
    refusing a stale copy, so refreshing again would not help.
    """

    token: str
    expires_at: float | None
    scope: str
    fresh: bool
    source: str  # keyring | command

    def __repr__(self) -> str:
        return f"AccessToken(expires_at={self.expires_at!r}, source={self.source!r})"


def load_tokens(channel_name: str) -> TokenSet | None:
    """The channel's stored tokens, or None when it was never authorized."""
    return TokenSet.from_json(secrets.read_secret(secrets.entry_name(channel_name, TOKENS)))


def save_tokens(channel_name: str, tokens: TokenSet) -> None:
    """Store ``tokens`` in the keyring (one entry, replaced at once)."""
    secrets.store_password(secrets.entry_name(channel_name, TOKENS), tokens.to_json())


def registration_entry(client_id: str) -> str:
    """The keyring user of the client secret of app registration ``client_id``.

    The secret belongs to the registration, not to one channel: given once (with any
    channel of that client id, which the config file's ``[oauth.PROVIDER]`` may name for
    all of them), every channel of the registration uses it. ``/`` is never in a channel
    name, so this entry cannot be a channel's.
    """
    return f"client/{client_id}:{CLIENT_SECRET}"


def client_secret(settings: OAuthSettings) -> str | None:
    """The client secret for the channel's registration, if one is stored (an entry of the
    channel itself, kept by earlier versions, comes first)."""
    own = secrets.read_secret(secrets.entry_name(settings.channel, CLIENT_SECRET))
    if own or not settings.client_id:
        return own
    return secrets.read_secret(registration_entry(settings.client_id))


def store_client_secret(settings: OAuthSettings, secret: str) -> None:
    """Keep the client secret of the channel's registration in the keyring (for every
    channel of that client id; the channel's own entry, if any, gives way)."""
    if not settings.client_id:
        secrets.store_password(secrets.entry_name(settings.channel, CLIENT_SECRET), secret)
        return
    secrets.store_password(registration_entry(settings.client_id), secret)
    secrets.delete_password(secrets.entry_name(settings.channel, CLIENT_SECRET))


def endpoint_for(settings: OAuthSettings, timeout: float) -> TokenEndpoint:
    """The channel's token endpoint with its client secret (refused when one is needed)."""
    secret = client_secret(settings)
    if settings.needs_client_secret and not secret:
        raise AuthorizationRequired(
            f"{settings.provider} wants the client secret of the app registration, and none "
            f"is stored for channel '{settings.channel}'.",
            operation="oauth", hint=f"eddymail channel edit {settings.channel} "
            "--oauth-client-secret-stdin (the secret is kept in the keyring)")
    return TokenEndpoint(settings, secret, timeout=timeout, clock=clock)


def access_token(settings: OAuthSettings, command: Sequence[str] | None, *,
                 timeout: float, rejected: str | None = None) -> AccessToken:
    """An access token for the channel, refreshed if it expires within ``LEEWAY``.

    ``rejected`` is a token a mail server just refused: it is replaced even if it looks
    valid. Raises ``AuthorizationRequired`` when a person must sign in again and
    ``OAuthError`` when the authorization server fails.
    """
    if command:
        return _from_command(settings, command, timeout, rejected)
    name = settings.channel
    tokens = _stored(name)
    if _usable(tokens, rejected):
        return AccessToken(tokens.access_token, tokens.expires_at, tokens.scope, False, "keyring")
    with _refresh_lock(name):
        tokens = _stored(name)  # again: another process may have refreshed meanwhile
        if _usable(tokens, rejected):
            return AccessToken(tokens.access_token, tokens.expires_at, tokens.scope, False,
                               "keyring")
        if not tokens.refresh_token:
            raise AuthorizationRequired(
                f"Channel '{name}' holds no refresh token (the provider gave none: was "
                "offline_access asked for?), and its access token has expired.",
                operation="oauth refresh", hint=f"run {diagnosis.authorize_command(settings)}")
        new = endpoint_for(settings, timeout).refresh(tokens.refresh_token)
        save_tokens(name, new)
        log.info("refreshed the access token of channel %s", name)
    return AccessToken(new.access_token, new.expires_at, new.scope, True, "keyring")


def classify_command_output(output: str) -> tuple[str, str]:
    """What a password command printed: ``("access", TOKEN)`` or ``("refresh", TOKEN)``.

    A JSON object says it itself (``{"access_token": ...}`` or ``{"refresh_token": ...}``).
    Otherwise a JWT (three base64url parts: Microsoft, Keycloak) or a Google (``ya29.``) or
    Yandex (``y0_``) access token is an access token, as helper scripts for mutt or getmail
    print them; anything else is taken for a refresh token.
    """
    text = output.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict):
            for kind in ("access", "refresh"):
                value = data.get(f"{kind}_token")
                if isinstance(value, str) and value:
                    return kind, value
        raise SecretError("The password command printed JSON without an access_token or a "
                          "refresh_token.")
    parts = text.split(".")
    if (len(parts) == 3 and all(parts) and text.startswith("eyJ")) or text.startswith(
            ("ya29.", "y0_")):
        return "access", text
    return "refresh", text


# --- helpers ------------------------------------------------------------------------------


def _stored(name: str) -> TokenSet:
    tokens = load_tokens(name)
    if tokens is None:
        raise AuthorizationRequired(f"Channel '{name}' has not been authorized yet.",
                                    operation="oauth",
                                    hint=f"run eddymail channel authorize {name}")
    return tokens


def _usable(tokens: TokenSet, rejected: str | None) -> bool:
    if not tokens.access_token or tokens.access_token == rejected:
        return False
    return tokens.expires_at is None or tokens.expires_at - LEEWAY > clock()


def _from_command(settings: OAuthSettings, command: Sequence[str], timeout: float,
                  rejected: str | None) -> AccessToken:
    output = secrets.run_password_command(settings.channel, command)
    kind, token = classify_command_output(output)
    if kind == "access":
        return AccessToken(token, None, "", True, "command")
    key = (settings.channel, hashlib.sha256(token.encode()).hexdigest())
    cached = _from_commands.get(key)
    if cached is not None and _usable(cached, rejected):
        return AccessToken(cached.access_token, cached.expires_at, cached.scope, False,
                           "command")
    new = endpoint_for(settings, timeout).refresh(token)
    if new.refresh_token != token:
        # Nowhere to keep it: the command will print the old one next time.
        log.warning("the provider rotated the refresh token of channel %s, which its "
                    "password command cannot keep; if the old one stops working, authorize "
                    "the channel with the keyring instead (eddymail channel authorize %s)",
                    settings.channel, settings.channel)
    _from_commands[key] = new
    return AccessToken(new.access_token, new.expires_at, new.scope, True, "command")


@contextmanager
def _refresh_lock(channel_name: str) -> Iterator[None]:
    """Hold the channel's refresh lock; a second process waits for the first one."""
    digest = hashlib.sha256(secrets.entry_name(channel_name, TOKENS).encode()).hexdigest()
    path = default_data_dir() / "locks" / f"oauth-{digest[:16]}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log.debug("another process is refreshing the token of channel %s; waiting",
                  channel_name)
        try:
            lock.acquire(timeout=LOCK_TIMEOUT)
        except filelock.Timeout:
            raise OAuthError(
                f"Another eddymail process has been refreshing the token of channel "
                f"'{channel_name}' for {LOCK_TIMEOUT:g} seconds.", operation="oauth refresh",
                hint=diagnosis.TEMPORARY) from None
    try:
        yield
    finally:
        lock.release()
