"""Channels: mailboxes attached to departments, with their server settings.

Adding or editing a channel is two steps, so the CLI can tell the user what a preset needs
(an app password, IMAP access switched on) *before* asking for the password:
``resolve_channel`` turns what was typed into a complete, validated ``ChannelDraft``;
``create_channel`` / ``update_channel`` store it. Passwords go to the keyring only.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from eddymail import secrets
from eddymail.db import database_proxy
from eddymail.errors import ConflictError, NotFoundError, ValidationError
from eddymail.models import Channel, ChannelCursor, Department, LedgerEntry, utcnow
from eddymail.presets import Preset, find_preset, get_preset, preset_for_address
from eddymail.services import naming, settings
from eddymail.services.departments import find_department

PROTOCOLS = ("imap", "pop3", "none")
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
INITIAL_ALL = -1
INITIAL_NONE = 0
EMAIL = re.compile(r"^[^@\s<>(),;:\"\[\]\\]{1,64}@[^@\s<>(),;:\"\[\]\\]+\.[^@\s<>(),;:\"\[\]\\.]+$")


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
    initial: str | None = None  # N, "all" or "none"
    notify_initial: bool | None = None
    authserv_id: str | None = None
    enabled: bool | None = None


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
    notify_initial: bool
    authserv_id: str
    enabled: bool

    @property
    def needs_password(self) -> bool:
        """Whether some server will ask for a password that must come from the keyring."""
        return (self.protocol != "none" or bool(self.smtp_host)) and not self.password_command

    @property
    def preset_hint(self) -> str | None:
        """What the provider's users must know (app password, IMAP access), if a preset applies."""
        preset = find_preset(self.preset)
        return preset.hint if preset else None


@dataclass(frozen=True)
class ChannelInfo:
    """A channel as shown by ``channel list|show`` (never with its password)."""

    id: int
    name: str
    department: str
    email: str
    display_name: str
    enabled: bool
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
    password_source: str  # keyring | command | none
    password_command: list[str] | None
    after_fetch: str
    move_to_folder: str
    unread_only: bool
    initial: str
    notify_initial: bool
    authserv_id: str
    outgoing_for_department: bool
    system_channel: bool
    connected_at: datetime | None
    created_at: datetime


def find_channel(name: str) -> Channel:
    """The channel called ``name``. Raises ``NotFoundError``."""
    channel = Channel.get_or_none(Channel.name == name.strip())
    if channel is None:
        raise NotFoundError(
            f"No channel named '{naming.printable(name)}': see eddymail channel list."
        )
    return channel


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

    return ChannelDraft(
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
        initial_limit=(
            parse_initial(options.initial) if options.initial is not None else base["initial_limit"]
        ),
        notify_initial=_pick(options.notify_initial, base["notify_initial"]),
        authserv_id=_pick(
            options.authserv_id,
            preset.authserv_id if preset and fill else None,
            base["authserv_id"],
        ).strip(),
        enabled=_pick(options.enabled, base["enabled"]),
    )


@dataclass(frozen=True)
class ChannelSaved:
    """The result of ``create_channel``/``update_channel``."""

    channel: ChannelInfo
    became_outgoing: bool


def create_channel(draft: ChannelDraft, password: str | None) -> ChannelSaved:
    """Store a new channel and its password (in the keyring), all or nothing."""
    if draft.needs_password and not password:
        raise ValidationError(
            f"Channel '{draft.name}' needs a password: give it with --password-stdin, at the "
            "prompt, or use --password-command."
        )
    with database_proxy.atomic():
        if Channel.select().where(Channel.name == draft.name).exists():
            raise ConflictError(f"A channel named '{draft.name}' already exists.")
        channel = Channel.create(**_row_values(draft))
        became_outgoing = _adopt_as_outgoing(channel)
        # Last, inside the transaction: if the keyring refuses, no channel without a password.
        if draft.needs_password and password:
            secrets.store_password(draft.name, password)
    return ChannelSaved(describe(channel), became_outgoing)


def update_channel(
    channel: Channel, draft: ChannelDraft, *, new_name: str | None = None
) -> ChannelSaved:
    """Store edited settings (and a new name, moving the keyring entry with it)."""
    old_name = channel.name
    with database_proxy.atomic():
        values = _row_values(draft)
        if new_name and new_name != old_name:
            values["name"] = naming.channel_name(new_name)
            if Channel.select().where(Channel.name == values["name"]).exists():
                raise ConflictError(f"A channel named '{values['name']}' already exists.")
        if values["department"] != channel.department_id:
            # Replies of the old department must not keep going out from a mailbox it lost.
            Department.update(outgoing_channel=None).where(
                (Department.id == channel.department_id)
                & (Department.outgoing_channel == channel.id)
            ).execute()
        if not values["smtp_host"]:
            Department.update(outgoing_channel=None).where(
                Department.outgoing_channel == channel.id
            ).execute()
            settings.forget_channel(channel.id)
        for field, value in values.items():
            setattr(channel, field, value)
        channel.updated_at = utcnow()
        channel.save()
        became_outgoing = _adopt_as_outgoing(channel)
        if values.get("name", old_name) != old_name:
            secrets.rename_password(old_name, values["name"])
    return ChannelSaved(describe(channel), became_outgoing)


def set_password(name: str, password: str) -> ChannelInfo:
    """Replace a channel's password in the keyring."""
    channel = find_channel(name)
    secrets.store_password(channel.name, password)
    return describe(channel)


def list_channels(department: str | None = None) -> list[ChannelInfo]:
    """All channels (of one department) by name."""
    query = Channel.select().order_by(Channel.name)
    if department:
        query = query.where(Channel.department == find_department(department))
    return [describe(channel) for channel in query]


def show_channel(name: str) -> ChannelInfo:
    """One channel."""
    return describe(find_channel(name))


def remove_channel(name: str) -> None:
    """Delete a channel, its fetch state and its keyring entry; its tickets stay."""
    with database_proxy.atomic():
        channel = find_channel(name)
        Department.update(outgoing_channel=None).where(
            Department.outgoing_channel == channel.id
        ).execute()
        settings.forget_channel(channel.id)
        ChannelCursor.delete().where(ChannelCursor.channel == channel).execute()
        LedgerEntry.delete().where(LedgerEntry.channel == channel).execute()
        channel.delete_instance()
    secrets.delete_password(channel.name)


def normalise_email(address: str) -> str:
    """``Local@Example.COM`` → ``Local@example.com``; refuses what is not one plain address."""
    address = address.strip()
    if not EMAIL.match(address):
        raise ValidationError(
            f"'{naming.printable(address)}' is not an e-mail address (expected name@domain)."
        )
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


def parse_initial(text: str) -> int:
    """``--initial``: a number of messages, ``all`` or ``none``."""
    value = text.strip().lower()
    if value == "all":
        return INITIAL_ALL
    if value == "none":
        return INITIAL_NONE
    if value.isdigit():
        return int(value)
    raise ValidationError(f"--initial must be a number, 'all' or 'none', not '{text}'.")


def format_initial(limit: int) -> str:
    """The stored initial limit as typed: ``100``, ``all`` or ``none``."""
    return {INITIAL_ALL: "all", INITIAL_NONE: "none"}.get(limit, str(limit))


def describe(channel: Channel) -> ChannelInfo:
    """The plain view of a channel row."""
    department = Department.get_by_id(channel.department_id)
    if channel.password_command:
        source = "command"
    elif channel.protocol != "none" or channel.smtp_host:
        source = "keyring"
    else:
        source = "none"
    return ChannelInfo(
        id=channel.id,
        name=channel.name,
        department=department.name,
        email=channel.email,
        display_name=channel.display_name,
        enabled=channel.enabled,
        preset=channel.preset,
        protocol=channel.protocol,
        host=channel.host,
        port=channel.port,
        security=channel.security,
        login=channel.login,
        folder=channel.folder,
        smtp_host=channel.smtp_host,
        smtp_port=channel.smtp_port,
        smtp_security=channel.smtp_security,
        smtp_login=channel.smtp_login or channel.login,
        ca_file=channel.ca_file,
        password_source=source,
        password_command=channel.password_command,
        after_fetch=channel.after_fetch,
        move_to_folder=channel.move_to_folder,
        unread_only=channel.unread_only,
        initial=format_initial(channel.initial_limit),
        notify_initial=channel.notify_initial,
        authserv_id=channel.authserv_id,
        outgoing_for_department=department.outgoing_channel_id == channel.id,
        system_channel=settings.get_value(settings.SYSTEM_CHANNEL) == channel.id,
        connected_at=channel.connected_at,
        created_at=channel.created_at,
    )


def password_source(channel: Channel) -> secrets.PasswordSource:
    """Where to get this channel's password from."""
    return secrets.PasswordSource(channel.name, channel.password_command or None)


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
            "notify_initial": True,
            "authserv_id": "",
            "enabled": True,
        }
    values = {
        f.name: getattr(channel, f.name)
        for f in dataclasses.fields(ChannelDraft)
        if f.name not in ("name", "department_id", "department")
    }
    values["department"] = Department.get_by_id(channel.department_id).name
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


def _row_values(draft: ChannelDraft) -> dict:
    values = {f.name: getattr(draft, f.name) for f in dataclasses.fields(draft)}
    values.pop("department")
    values["department"] = values.pop("department_id")
    return values


def _adopt_as_outgoing(channel: Channel) -> bool:
    """A department's first channel with SMTP settings becomes its outgoing channel."""
    if not channel.smtp_host:
        return False
    updated = (
        Department.update(outgoing_channel=channel.id)
        .where((Department.id == channel.department_id) & Department.outgoing_channel.is_null())
        .execute()
    )
    return bool(updated)
