"""Where a mail server is and how to reach it: host, port, TLS mode, login, timeout.

``Endpoint`` is what the protocol clients need; ``ProviderHints`` carries what a provider preset
knows about a mailbox (needs an app password, where IMAP access is switched on) so that an
error can say what to do. Both are plain frozen values, built by the caller from a channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from eddymail.errors import ValidationError

Security = Literal["ssl", "starttls", "none"]
SECURITY_MODES: tuple[str, ...] = get_args(Security)


@dataclass(frozen=True)
class Endpoint:
    """One mail server as a client sees it.

    ``security`` is ``"ssl"`` (TLS from the first byte), ``"starttls"`` (plain greeting, then a
    mandatory upgrade to TLS before the password is sent) or ``"none"`` (an explicit choice, e.g.
    a server on loopback). ``ca_file`` adds a company CA to the system trust store, it does not
    replace it. ``timeout`` bounds every network operation: the connect and each command.
    """

    host: str
    port: int
    security: Security
    login: str
    ca_file: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.host or any(ch.isspace() for ch in self.host):
            raise ValidationError(f"The mail server name {self.host!r} is not a host name.")
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValidationError(f"The port {self.port!r} is not between 1 and 65535.")
        if self.security not in SECURITY_MODES:
            raise ValidationError(
                f"The security mode {self.security!r} is not one of {', '.join(SECURITY_MODES)}."
            )
        if not self.timeout > 0:
            raise ValidationError(f"The timeout {self.timeout!r} must be a positive number.")

    @property
    def address(self) -> str:
        """``host:port`` as people write it (IPv6 literals in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ProviderHints:
    """What a provider preset knows, so an error can name the likely fix. All optional.

    ``provider`` is a display name ("Gmail"), ``app_password`` says the provider wants an app
    password instead of the mailbox password, ``access_setting`` where IMAP/POP access is
    switched on ("Settings → Forwarding and POP/IMAP → Enable IMAP").
    """

    provider: str | None = None
    app_password: bool = False
    access_setting: str | None = None


#: The default for clients: no provider knowledge.
NO_HINTS = ProviderHints()
