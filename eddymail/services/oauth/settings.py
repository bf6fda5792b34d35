"""What a channel's authorization server is: the preset's facts, the team's config, its own.

A channel's own values win (``--oauth-client-id``, ``--oauth-token-url``...), then the
config file's ``[oauth.PROVIDER]`` table, then the preset. Nothing here is secret: the client
secret and the tokens live in the keyring (``store``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, urlsplit

from eddymail.errors import ValidationError
from eddymail.presets import DEVICE_GRANT, OAuthProvider, Preset, find_preset
from eddymail.services.runtime import active_config

FLOWS = ("device", "code")
#: SASL mechanisms of a provider without a preset, best first: the standard one, then
#: Google's older XOAUTH2 that many servers (Dovecot, Exchange) also take.
STANDARD_MECHANISMS = ("OAUTHBEARER", "XOAUTH2")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ChannelLike(Protocol):
    """The channel fields OAuth needs (a stored ``Channel`` or a ``ChannelDraft``)."""

    @property
    def name(self) -> str: ...
    @property
    def preset(self) -> str | None: ...
    @property
    def protocol(self) -> str: ...
    @property
    def smtp_host(self) -> str: ...
    @property
    def ca_file(self) -> str | None: ...
    @property
    def oauth_client_id(self) -> str: ...
    @property
    def oauth_tenant(self) -> str: ...
    @property
    def oauth_authorize_url(self) -> str: ...
    @property
    def oauth_token_url(self) -> str: ...
    @property
    def oauth_device_url(self) -> str: ...
    @property
    def oauth_scopes(self) -> list[str] | None: ...


@dataclass(frozen=True)
class OAuthSettings:
    """Everything needed to talk to one channel's authorization server."""

    channel: str
    provider: str  # a display name: "Outlook.com / Microsoft 365", or "the authorization server"
    preset: str | None
    client_id: str
    tenant: str
    authorize_url: str
    token_url: str
    device_url: str
    revoke_url: str
    scopes: tuple[str, ...]
    mechanisms: tuple[str, ...]
    default_flow: str
    needs_client_secret: bool
    authorize_params: tuple[tuple[str, str], ...]
    device_grant: tuple[str, str]
    redirect_host: str
    consent_hint: str
    registration: str
    ca_file: str | None

    def flows(self) -> tuple[str, ...]:
        """The flows this server can run: ``device`` needs a device URL, ``code`` an
        authorization URL."""
        return tuple(flow for flow, url in (("device", self.device_url),
                                            ("code", self.authorize_url)) if url)


def oauth_settings(channel: ChannelLike) -> OAuthSettings:
    """Resolve ``channel``'s OAuth settings (not validated: see :func:`check_settings`)."""
    preset = find_preset(channel.preset)
    provider = preset.oauth if preset else None
    config = active_config()
    key = preset.key if preset and provider else None
    tenant = (channel.oauth_tenant or config.oauth_default(key, "tenant")
              or (provider.tenant if provider and provider.tenant else ""))

    def url(own: str, template: str | None) -> str:
        if own:
            return own
        return template.replace("{tenant}", quote(tenant, safe="")) if template else ""

    return OAuthSettings(
        channel=channel.name,
        provider=preset.name if preset and provider else "the authorization server",
        preset=key,
        client_id=channel.oauth_client_id or config.oauth_default(key, "client_id"),
        tenant=tenant,
        authorize_url=url(channel.oauth_authorize_url,
                          provider.authorize_url if provider else None),
        token_url=url(channel.oauth_token_url, provider.token_url if provider else None),
        device_url=url(channel.oauth_device_url, provider.device_url if provider else None),
        revoke_url=url("", provider.revoke_url if provider else None),
        scopes=_scopes(channel, provider),
        mechanisms=provider.mechanisms if provider else STANDARD_MECHANISMS,
        default_flow=_default_flow(channel, provider),
        needs_client_secret=bool(provider and provider.client_secret),
        authorize_params=provider.authorize_params if provider else (),
        device_grant=provider.device_grant if provider else (DEVICE_GRANT, "device_code"),
        redirect_host=provider.redirect_host if provider else "127.0.0.1",
        consent_hint=provider.consent_hint if provider else "",
        registration=provider.registration if provider else "",
        ca_file=channel.ca_file,
    )


def check_settings(channel: ChannelLike) -> OAuthSettings:
    """The settings, or a ``ValidationError`` naming what is missing and the flag to give."""
    settings = oauth_settings(channel)
    preset = find_preset(channel.preset)
    provider = preset.oauth if preset else None
    if preset is not None and provider is None and not settings.token_url:
        raise ValidationError(
            f"{preset.name} does not offer OAuth 2.0 sign-in to mail programs; use "
            "--auth password, or name the endpoints with --oauth-token-url and "
            "--oauth-authorize-url or --oauth-device-url.")
    _check_protocols(channel, preset, provider)
    if channel.oauth_tenant and not _names_tenant(channel, provider):
        raise ValidationError(
            "--oauth-tenant goes with a provider whose endpoints name a tenant (Microsoft "
            "365: --preset outlook); these endpoints have none, so it would be ignored "
            "(clear it with --oauth-tenant '').")
    if not settings.token_url:
        raise ValidationError("OAuth 2.0 needs the provider's token endpoint: --oauth-token-url "
                              "URL (or a --preset that knows it).")
    if not settings.flows():
        raise ValidationError("OAuth 2.0 needs an authorization endpoint (--oauth-authorize-url) "
                              "or a device authorization endpoint (--oauth-device-url).")
    for what, value in (("authorize", settings.authorize_url), ("token", settings.token_url),
                        ("device", settings.device_url)):
        if value:
            _check_url(f"--oauth-{what}-url", value)
    if not settings.client_id:
        where = f" or once for all its channels as client_id in [oauth.{settings.preset}] of " \
                "the config file" if settings.preset else ""
        raise ValidationError(
            f"OAuth 2.0 needs the client id of the app you registered at {settings.provider}: "
            f"--oauth-client-id ID{where}." + (f" {settings.registration}"
                                              if settings.registration else ""))
    return settings


def parse_scopes(values: Sequence[str]) -> list[str]:
    """``--oauth-scope`` values (each may hold several, space-separated), in order, once."""
    scopes: list[str] = []
    for value in values:
        for scope in value.split():
            if scope not in scopes:
                scopes.append(scope)
    return scopes


def _scopes(channel: ChannelLike, provider: OAuthProvider | None) -> tuple[str, ...]:
    if channel.oauth_scopes is not None or provider is None:
        return tuple(channel.oauth_scopes or ())
    wanted = [channel.protocol] if channel.protocol != "none" else []
    if channel.smtp_host:
        wanted.append("smtp")
    scopes: list[str] = []
    for protocol in wanted:
        scopes.extend(provider.scopes.get(protocol, ()))
    return tuple(parse_scopes([*scopes, *provider.base_scopes]))


def _default_flow(channel: ChannelLike, provider: OAuthProvider | None) -> str:
    if provider is not None and not (channel.oauth_device_url or channel.oauth_authorize_url):
        return provider.flow
    return "device" if channel.oauth_device_url or (provider and provider.device_url) else "code"


def _check_protocols(channel: ChannelLike, preset: Preset | None,
                     provider: OAuthProvider | None) -> None:
    if provider is None or preset is None:
        return
    used = ([channel.protocol] if channel.protocol != "none" else []) + (
        ["smtp"] if channel.smtp_host else [])
    for protocol in used:
        if not provider.supports(protocol):
            offered = " and ".join(p.upper() for p in provider.scopes)
            raise ValidationError(
                f"{preset.name} signs in with OAuth 2.0 over {offered} only, not "
                f"{protocol.upper()}: use --protocol imap, or --auth password.")


def _names_tenant(channel: ChannelLike, provider: OAuthProvider | None) -> bool:
    """Whether an endpoint the channel uses comes from a preset template with ``{tenant}``."""
    if provider is None:
        return False
    return any(not own and template and "{tenant}" in template for own, template in (
        (channel.oauth_authorize_url, provider.authorize_url),
        (channel.oauth_token_url, provider.token_url),
        (channel.oauth_device_url, provider.device_url)))


def _check_url(option: str, url: str) -> None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises for a port that is not a number
    except ValueError as error:  # "https://[::1", "https://h:port"
        raise ValidationError(f"{option} is not a valid URL ({error}): {url!r}.") from None
    if parts.scheme == "https" and host:
        return
    if parts.scheme == "http" and host in _LOOPBACK:
        return  # on this machine: nothing crosses a network
    raise ValidationError(
        f"{option} must be an https:// URL (plain http only to this machine): {url!r}. "
        "Tokens and codes sent in clear could be read on the way.")
