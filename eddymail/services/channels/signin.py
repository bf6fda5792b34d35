"""How a channel signs in: with its password, or with an OAuth 2.0 access token.

:func:`with_sign_in` hands a protocol session the channel's credential. An access token that
a mail server refuses although it looked valid (revoked, or expired early) is refreshed once
and tried again; a fresh token refused gets the hint that fits (scopes, IMAP/SMTP AUTH
switched off). :func:`authorize_channel` runs the device or code flow and keeps the tokens;
:func:`sign_in_status` is what ``channel test`` shows about them, never the tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

from eddymail import secrets
from eddymail.db.models import Channel
from eddymail.errors import AuthorizationRequired, BearerRefused, UsageError, ValidationError
from eddymail.mail.wire.sasl import BearerToken
from eddymail.services.channels.lookup import find_channel, password_source

# The token store, its endpoint client and the authorization flows (with an HTTP server and
# TLS) are imported where an OAuth 2.0 channel needs them: a channel that signs in with a
# password, and a run that only queues mail, never does.
if TYPE_CHECKING:
    from eddymail.services.oauth.endpoint import TokenSet
    from eddymail.services.oauth.flows import Interaction
    from eddymail.services.oauth.settings import OAuthSettings

log = logging.getLogger("eddymail.oauth")
T = TypeVar("T")
Credential = str | BearerToken


def with_sign_in(channel: Channel, *, timeout: float, protocol: str,
                 action: Callable[[Credential], T]) -> T:
    """Run ``action`` (a session that logs in first) with the channel's credential.

    A refused access token that did not come fresh from the token endpoint is replaced
    once: the login is the session's first step, so nothing was done with the first try.
    """
    if channel.auth_method != "oauth2":
        with secrets.password_in_use(password_source(channel)) as password:
            return action(password)
    # Imported here: most channels sign in with a password, and the OAuth settings bring
    # every provider preset with them.
    from eddymail.services.oauth import diagnosis, store
    from eddymail.services.oauth.settings import oauth_settings

    settings = oauth_settings(channel)
    command = channel.password_command or None
    access = store.access_token(settings, command, timeout=timeout)
    try:
        with secrets.in_use(access.token):
            return action(BearerToken(access.token, settings.mechanisms))
    except BearerRefused as refused:
        if access.fresh or not refused.announced:  # a new token would fare no better
            raise diagnosis.refused_token(settings, refused, protocol) from refused
        log.info("the %s server refused the stored access token of channel %s; refreshing",
                 protocol, channel.name)
    access = store.access_token(settings, command, timeout=timeout, rejected=access.token)
    try:
        with secrets.in_use(access.token):
            return action(BearerToken(access.token, settings.mechanisms))
    except BearerRefused as refused:
        # Chained: the refused error carries the token, for scrubbing what reports this one.
        raise diagnosis.refused_token(settings, refused, protocol) from refused


@dataclass(frozen=True)
class SignInStatus:
    """An OAuth 2.0 channel's sign-in as ``channel test`` reports it (never the token)."""

    method: str  # oauth2
    source: str  # keyring | command
    flow: str  # the default flow
    expires_at: datetime | None  # of the access token in hand (UTC)
    scopes: list[str] | None  # granted, when the server said
    refreshed: bool  # a new access token was fetched for this check


def sign_in_status(channel: Channel, *, timeout: float) -> SignInStatus:
    """Get (refreshing if due) an OAuth channel's access token and describe it. Raises
    ``AuthorizationRequired``, ``OAuthError`` or ``SecretError`` as getting it does."""
    from eddymail.services.oauth import store
    from eddymail.services.oauth.settings import oauth_settings

    settings = oauth_settings(channel)
    access = store.access_token(settings, channel.password_command or None, timeout=timeout)
    return SignInStatus("oauth2", access.source, settings.default_flow,
                        _utc(access.expires_at), access.scope.split() or None, access.fresh)


@dataclass(frozen=True)
class AuthorizationResult:
    """What ``channel authorize`` got (never the tokens themselves)."""

    channel: str
    flow: str
    provider: str
    expires_at: datetime | None
    scopes: list[str]
    refresh_token: bool  # whether one was granted (without it, sign-in lasts one hour or so)


def authorize_channel(name: str, *, interaction: Interaction, flow: str | None = None,
                      no_browser: bool = False, timeout: float = 30.0) -> AuthorizationResult:
    """Get a channel's first tokens with the device or code flow and keep them."""
    from eddymail.services.oauth import flows
    from eddymail.services.oauth.settings import FLOWS

    channel, settings = _oauth_channel(name)
    chosen = flow or settings.default_flow
    if chosen not in FLOWS or chosen not in settings.flows():
        raise UsageError(f"{settings.provider} has no endpoint for the {chosen} flow here; "
                         f"available: {', '.join(settings.flows()) or 'none'}.")
    if chosen == "device":
        tokens = flows.device_flow(settings, interaction, timeout=timeout)
    else:
        tokens = flows.code_flow(settings, interaction, timeout=timeout, no_browser=no_browser)
    return _keep(channel, settings, chosen, tokens)


def import_refresh_token(name: str, refresh_token: str, *,
                         timeout: float = 30.0) -> AuthorizationResult:
    """Keep a refresh token given by a script, after one refresh proves it works."""
    channel, settings = _oauth_channel(name)
    token = refresh_token.strip()
    if not token:
        raise ValidationError("The refresh token read from stdin is empty.")
    from eddymail.services.oauth import store

    try:
        tokens = store.endpoint_for(settings, timeout).refresh(token)
    except AuthorizationRequired as refused:
        # Not "run channel authorize": that is what is running. The token given is at fault.
        raise AuthorizationRequired(
            "The refresh token read from stdin was refused: it was revoked or has expired, or "
            f"it was granted to another client id than channel '{channel.name}' has; "
            "nothing was stored.", operation=refused.operation, answer=refused.answer,
            hint=f"give a current refresh token, or sign in with eddymail channel authorize "
            f"{channel.name}") from None
    return _keep(channel, settings, "refresh-token", tokens)


def _oauth_channel(name: str) -> tuple[Channel, OAuthSettings]:
    from eddymail.services.oauth.settings import oauth_settings

    channel = find_channel(name)
    if channel.auth_method != "oauth2":
        raise UsageError(f"Channel '{channel.name}' signs in with a password; switch it "
                         f"first: eddymail channel edit {channel.name} --auth oauth2.")
    if channel.password_command:
        raise UsageError(f"Channel '{channel.name}' takes its token from its password command; "
                         "tokens got here would be kept in the keyring and never used. Remove "
                         f"the command first: eddymail channel edit {channel.name} "
                         "--password-command ''.")
    return channel, oauth_settings(channel)


def _keep(channel: Channel, settings: OAuthSettings, flow: str,
          tokens: TokenSet) -> AuthorizationResult:
    from eddymail.services.oauth import store

    store.save_tokens(channel.name, tokens)
    return AuthorizationResult(channel=channel.name, flow=flow, provider=settings.provider,
                               expires_at=_utc(tokens.expires_at),
                               scopes=tokens.scope.split(),
                               refresh_token=tokens.refresh_token is not None)


def _utc(moment: float | None) -> datetime | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).replace(tzinfo=None, microsecond=0)
