"""What a channel's settings are: defaults, presets and typed options resolved into one draft.

Adding or editing a channel is two steps, so the CLI can tell the user what a preset needs
(an app password, IMAP access switched on) *before* asking for the password:
``resolve_channel`` turns what was typed into a complete, validated ``ChannelDraft``;
``eddymail.services.channels.registry`` stores it.
"""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from eddymail.db.models import Channel, Department
from eddymail.errors import ConflictError, ValidationError
from eddymail.patterns import LazyPattern
from eddymail.presets import Preset, find_preset, get_preset, preset_for_address
from eddymail.services import naming
from eddymail.services.channels.firstimport import (
    POP3_HAS_NO_DATES,
    FirstImport,
    parse_initial,
)
from eddymail.services.departments import find_department
from eddymail.services.oauth.settings import check_settings, parse_scopes

PROTOCOLS = ("imap", "pop3", "none")
AUTH_METHODS = ("password", "oauth2")
SECURITIES = ("ssl", "starttls", "none")
AFTER_FETCH = ("mark_read", "keep", "move", "delete")
DEFAULT_PORTS = {
    ("imap", "ssl"): 993,
    ("imap", "starttls"): 143,
    ("imap", "none"): 143,
    ("pop3", "ssl"): 995,
    ("pop3", "starttls"): 110,
    ("pop3", "none"): 110,
    ("smtp", "ssl"): 465,
    ("smtp", "starttls"): 587,
    ("smtp", "none"): 25,
}
EMAIL = LazyPattern(
    r"^[^@\s<>(),;:\"\[\]\\]{1,64}@[^@\s<>(),;:\"\[\]\\]+\.[^@\s<>(),;:\"\[\]\\.]+$")


@dataclass(frozen=True)
class ChannelOptions:
    """What the user typed for ``channel add|edit``; ``None`` means "not given"."""

    department: str | None = None
    email: str | None = None
    display_name: str | None = None
    preset: str | None = None
    protocol: str | None = None
    host: str | None = None
    port: int | None = None
    security: str | None = None
    login: str | None = None
    folder: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str | None = None
    smtp_login: str | None = None
    ca_file: str | None = None  # "" clears
    password_command: str | None = None  # "" clears; split like a shell would, run without one
    after_fetch: str | None = None
    move_to_folder: str | None = None
    unread_only: bool | None = None
    initial: str | None = None  # N, "all", "none" or "since YYYY-MM-DD"
    notify_initial: bool | None = None
    authserv_id: str | None = None
    enabled: bool | None = None
    auth: str | None = None  # password | oauth2
    oauth_client_id: str | None = None
    oauth_tenant: str | None = None
    oauth_authorize_url: str | None = None  # "" clears
    oauth_token_url: str | None = None
    oauth_device_url: str | None = None
    oauth_scopes: tuple[str, ...] | None = None  # () clears: back to the preset's


@dataclass(frozen=True)
class ChannelDraft:
    """A complete, validated set of channel settings, not stored yet."""

    name: str
    department_id: int
    department: str
    email: str
    display_name: str
    preset: str | None
    protocol: str
    host: str
    port: int | None
    security: str
    login: str
    folder: str
    smtp_host: str
    smtp_port: int | None
    smtp_security: str
    smtp_login: str
    ca_file: str | None
    password_command: list[str] | None
    after_fetch: str
    move_to_folder: str
    unread_only: bool
    initial_limit: int
    initial_since: date | None
    notify_initial: bool
    authserv_id: str
    enabled: bool
    auth_method: str
    oauth_client_id: str
    oauth_tenant: str
    oauth_authorize_url: str
    oauth_token_url: str
    oauth_device_url: str
    oauth_scopes: list[str] | None

    @property
    def needs_password(self) -> bool:
        """Whether some server will ask for a password that must come from the keyring."""
        return (self.auth_method == "password" and (self.protocol != "none"
                                                     or bool(self.smtp_host))
                and not self.password_command)

    @property
    def preset_hint(self) -> str | None:
        """What the provider's users must know (app password, IMAP access, or how to register
        an app for OAuth 2.0), if a preset applies."""
        preset = find_preset(self.preset)
        if preset is None:
            return None
        if self.auth_method == "oauth2" and preset.oauth is not None:
            return preset.oauth.registration
        return preset.hint


def resolve_channel(
    name: str, options: ChannelOptions, existing: Channel | None = None
) -> ChannelDraft:
    """Combine an existing channel (or defaults), a preset and the typed options; validate."""
    name = naming.channel_name(name)
    if existing is None and Channel.select().where(Channel.name == name).exists():
        raise ConflictError(f"A channel named '{name}' already exists.")
    base = _current(existing)

    department_name = options.department or base["department"]
    if not department_name:
        raise ValidationError("A channel needs a department: --department NAME.")
    department = find_department(department_name)

    email = (options.email or base["email"]).strip()
    if not email:
        raise ValidationError("A channel needs its e-mail address: --email ADDRESS.")
    email = normalise_email(email)

    preset = _choose_preset(options, base, email, existing is None)
    protocol = _choice(
        "--protocol",
        options.protocol or base["protocol"] or ("imap" if preset or options.host else "none"),
        PROTOCOLS,
    )

    incoming = preset.incoming(protocol) if preset and protocol != "none" else None
    if preset and protocol != "none" and incoming is None:
        raise ValidationError(
            f"{preset.name} offers no {protocol.upper()} server; use --protocol imap."
        )
    fill = options.preset is not None or existing is None
    host = _pick(options.host, incoming.host if incoming and fill else None, base["host"])
    security = _choice(
        "--security",
        _pick(
            options.security,
            incoming.security if incoming and fill else None,
            base["security"],
            "ssl",
        ),
        SECURITIES,
    )
    port = _port(
        options.port,
        incoming.port if incoming and fill and incoming.security == security else None,
        base,
        "port",
        protocol,
        security,
        base["security"],
    )
    if protocol == "none":
        host, port = "", None
    elif not host:
        raise ValidationError(
            f"An {protocol.upper()} channel needs its server: --host NAME (or --preset)."
        )

    smtp = preset.smtp if preset and fill else None
    smtp_host = _pick(options.smtp_host, smtp.host if smtp else None, base["smtp_host"])
    smtp_security = _choice(
        "--smtp-security",
        _pick(options.smtp_security, smtp.security if smtp else None, base["smtp_security"], "ssl"),
        SECURITIES,
    )
    smtp_port = _port(
        options.smtp_port,
        smtp.port if smtp and smtp.security == smtp_security else None,
        base,
        "smtp_port",
        "smtp",
        smtp_security,
        base["smtp_security"],
    )
    if not smtp_host:
        smtp_port = None

    after_fetch = _choice(
        "--after-fetch", _pick(options.after_fetch, base["after_fetch"]), AFTER_FETCH
    )
    move_to_folder = _pick(options.move_to_folder, base["move_to_folder"]).strip()
    if after_fetch == "move" and not move_to_folder:
        raise ValidationError("--after-fetch move needs the target folder: --move-to FOLDER.")
    if protocol == "pop3" and after_fetch == "move":
        raise ValidationError("POP3 has no folders: use --after-fetch keep or delete.")

    first = parse_initial(options.initial) if options.initial is not None else FirstImport(
        base["initial_limit"], base["initial_since"])
    if first.since is not None and protocol == "pop3":
        raise ValidationError(POP3_HAS_NO_DATES)
    draft = ChannelDraft(
        name=name,
        department_id=department.id,
        department=department.name,
        email=email,
        display_name=_one_line(_pick(options.display_name, base["display_name"])),
        preset=preset.key if preset else None,
        protocol=protocol,
        host=host.strip(),
        port=port,
        security=security,
        login=_pick(options.login, base["login"]) or email,
        folder=_pick(options.folder, base["folder"], "INBOX"),
        smtp_host=smtp_host.strip(),
        smtp_port=smtp_port,
        smtp_security=smtp_security,
        smtp_login=_pick(options.smtp_login, base["smtp_login"]),
        ca_file=_ca_file(options.ca_file, base["ca_file"]),
        password_command=_password_command(options.password_command, base["password_command"]),
        after_fetch=after_fetch,
        move_to_folder=move_to_folder,
        unread_only=_pick(options.unread_only, base["unread_only"]),
        initial_limit=first.limit,
        initial_since=first.since,
        notify_initial=_pick(options.notify_initial, base["notify_initial"]),
        authserv_id=_pick(
            options.authserv_id,
            preset.authserv_id if preset and fill else None,
            base["authserv_id"],
        ).strip(),
        enabled=_pick(options.enabled, base["enabled"]),
        **_sign_in(options, base),
    )
    if draft.auth_method == "oauth2":
        check_settings(draft)
    return draft


def normalise_email(address: str) -> str:
    """``Local@Example.COM`` → ``Local@example.com``; refuses what is not one plain address."""
    address = address.strip()
    if not EMAIL.match(address):
        raise ValidationError(
            f"'{naming.printable(address)}' is not an e-mail address (expected name@domain)."
        )
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


# --- helpers ------------------------------------------------------------------------------


def _current(channel: Channel | None) -> dict:
    if channel is None:
        return {
            "department": None,
            "email": "",
            "display_name": "",
            "preset": None,
            "protocol": None,
            "host": "",
            "port": None,
            "security": None,
            "login": "",
            "folder": "INBOX",
            "smtp_host": "",
            "smtp_port": None,
            "smtp_security": None,
            "smtp_login": "",
            "ca_file": None,
            "password_command": None,
            "after_fetch": "mark_read",
            "move_to_folder": "",
            "unread_only": False,
            "initial_limit": 100,
            "initial_since": None,
            "notify_initial": True,
            "authserv_id": "",
            "enabled": True,
            "auth_method": "password",
            "oauth_client_id": "",
            "oauth_tenant": "",
            "oauth_authorize_url": "",
            "oauth_token_url": "",
            "oauth_device_url": "",
            "oauth_scopes": None,
        }
    values = {
        f.name: getattr(channel, f.name)
        for f in dataclasses.fields(ChannelDraft)
        if f.name not in ("name", "department_id", "department")
    }
    values["department"] = Department.get_by_id(channel.department_id).name
    return values


def _sign_in(options: ChannelOptions, base: dict) -> dict:
    """The sign-in fields: the method and the OAuth settings, stripped and checked."""
    values = {
        "auth_method": _choice("--auth", _pick(options.auth, base["auth_method"]), AUTH_METHODS),
        "oauth_client_id": _pick(options.oauth_client_id, base["oauth_client_id"]).strip(),
        "oauth_tenant": _pick(options.oauth_tenant, base["oauth_tenant"]).strip(),
    }
    for kind in ("authorize", "token", "device"):
        field = f"oauth_{kind}_url"
        values[field] = _pick(getattr(options, field), base[field]).strip()
    if options.oauth_scopes is None:
        values["oauth_scopes"] = base["oauth_scopes"]
    else:
        values["oauth_scopes"] = parse_scopes(options.oauth_scopes) or None
    return values


def _choose_preset(options: ChannelOptions, base: dict, email: str, new: bool) -> Preset | None:
    if options.preset is not None:
        return None if options.preset in ("", "none") else get_preset(options.preset)
    if not new:
        return find_preset(base["preset"])
    # Detect the provider from the address only when the user named no servers himself.
    if options.host or options.smtp_host:
        return None
    return preset_for_address(email)


def _pick(*candidates):
    for candidate in candidates:
        if candidate is not None:
            return candidate
    return ""


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    value = (value or "").strip().lower()
    if value not in allowed:
        raise ValidationError(f"{option} must be one of {', '.join(allowed)}, not '{value}'.")
    return value


def _port(given, preset_port, base, field, protocol, security, old_security) -> int | None:
    if given is not None:
        if not 0 < given < 65536:
            raise ValidationError(f"Port {given} is out of range (1-65535).")
        return given
    if preset_port is not None:
        return preset_port
    current = base[field]
    # Keep a port the user chose; follow the security change when it was only the default.
    if current is not None and current != DEFAULT_PORTS.get((protocol, old_security or "")):
        return current
    return DEFAULT_PORTS.get((protocol, security))


def _ca_file(given: str | None, current: str | None) -> str | None:
    if given is None:
        return current
    if given == "":
        return None
    path = Path(given).expanduser()
    if not path.is_file():
        raise ValidationError(f"CA file {path} does not exist or is not a file.")
    return str(path.resolve())


def _password_command(given: str | None, current: list[str] | None) -> list[str] | None:
    if given is None:
        return current
    if not given.strip():
        return None
    try:
        argv = shlex.split(given)
    except ValueError as error:
        raise ValidationError(f"Cannot split --password-command: {error}.") from None
    return argv


def _one_line(text: str) -> str:
    return " ".join(text.split())
