"""A channel's servers as the protocol clients need them."""

from __future__ import annotations

from eddymail.db.models import Channel
from eddymail.mail.wire.endpoint import Endpoint, ProviderHints
from eddymail.presets import find_preset


def provider_hints_of(channel: Channel) -> ProviderHints:
    """What the channel's provider preset knows, for error hints."""
    preset = find_preset(channel.preset)
    if preset is None:
        return ProviderHints()
    return ProviderHints(
        provider=preset.name, app_password=preset.app_password,
        access_setting=preset.access_setting,
    )


def incoming_endpoint(channel: Channel, timeout: float) -> Endpoint:
    """The channel's IMAP/POP3 server."""
    return Endpoint(host=channel.host, port=channel.port, security=channel.security,
                    login=channel.login, ca_file=channel.ca_file, timeout=timeout)


def smtp_endpoint(channel: Channel, timeout: float) -> Endpoint:
    """The channel's SMTP server (its login defaults to the incoming one)."""
    return Endpoint(host=channel.smtp_host, port=channel.smtp_port,
                    security=channel.smtp_security, login=channel.smtp_login or channel.login,
                    ca_file=channel.ca_file, timeout=timeout)
