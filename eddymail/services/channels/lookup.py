"""Finding a stored channel by name, and where its password comes from.

Every ``ingest`` and ``fetch`` starts here; describing and changing channels
(``eddymail.services.channels.registry``) is for the ``channel`` commands, and its
descriptions are not loaded for a mail server's ``ingest`` (issue 14).
"""

from __future__ import annotations

from eddymail import secrets
from eddymail.db.models import Channel
from eddymail.errors import NotFoundError
from eddymail.services import naming


def find_channel(name: str) -> Channel:
    """The channel called ``name``. Raises ``NotFoundError``."""
    channel = Channel.get_or_none(Channel.name == name.strip())
    if channel is None:
        raise NotFoundError(
            f"No channel named '{naming.printable(name)}': see eddymail channel list."
        )
    return channel


def password_source(channel: Channel) -> secrets.PasswordSource:
    """Where to get this channel's password from."""
    return secrets.PasswordSource(channel.name, channel.password_command or None)
