"""A channel's servers as the protocol clients need them."""

from __future__ import annotations

from typing import cast

from eddymail.db.models import Channel
from eddymail.errors import ConfigError
from eddymail.mail.wire.endpoint import SECURITY_MODES, Endpoint, ProviderHints, Security


def provider_hints_of(channel: Channel) -> ProviderHints:
    """What the channel's provider preset knows, for error hints."""
    if not channel.preset:
        return ProviderHints()
    # Imported here: every session asks, and most channels have no preset.
    from eddymail.presets import find_preset

    preset = find_preset(channel.preset)
    if preset is None:
        return ProviderHints()
    return ProviderHints(
        provider=preset.name, app_password=preset.app_password,
        access_setting=preset.access_setting,
    )


def incoming_endpoint(channel: Channel, timeout: float) -> Endpoint:
    """The channel's IMAP/POP3 server."""
    port, security = _checked(channel, channel.port, channel.security, "incoming")
    return Endpoint(host=channel.host, port=port, security=security,
                    login=channel.login, ca_file=channel.ca_file, timeout=timeout)


def smtp_endpoint(channel: Channel, timeout: float) -> Endpoint:
    """The channel's SMTP server (its login defaults to the incoming one)."""
    port, security = _checked(channel, channel.smtp_port, channel.smtp_security, "SMTP")
    return Endpoint(host=channel.smtp_host, port=port,
                    security=security, login=channel.smtp_login or channel.login,
                    ca_file=channel.ca_file, timeout=timeout)


def _checked(
    channel: Channel, port: int | None, security: str, server: str
) -> tuple[int, Security]:
    # The columns are a nullable integer and free text; `channel add/edit` fills and checks
    # them, so this only trips on a row changed behind the tool's back.
    if port is None or security not in SECURITY_MODES:
        raise ConfigError(
            f"Channel '{channel.name}' has no usable {server} server settings "
            f"(port {port}, security {security!r}).",
            hint=f"Set them with eddymail channel edit {channel.name}.",
        )
    return port, cast(Security, security)
