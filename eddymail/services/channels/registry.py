"""Channels: storing, listing and removing mailboxes; passwords go to the keyring only.

What the settings *are* (defaults, presets, validation) is ``channel_settings``; this
module stores a resolved ``ChannelDraft`` and keeps departments and team settings that
point at a channel consistent with it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from eddymail import secrets
from eddymail.db.connection import database_proxy
from eddymail.db.models import Channel, ChannelCursor, Department, LedgerEntry, utcnow
from eddymail.errors import ConflictError, ValidationError
from eddymail.services import naming, settings
from eddymail.services.channels.lookup import find_channel
from eddymail.services.departments import find_department

# Resolving a channel's settings (presets, checks) is imported by the functions that add,
# change or describe a channel: finding one by name is the first step of every ingest.
if TYPE_CHECKING:
    from eddymail.services.channels.drafts import ChannelDraft, ChannelOptions


@dataclass(frozen=True)
class OAuthInfo:
    """A channel's OAuth 2.0 settings as resolved (never a token or a client secret)."""

    provider: str
    client_id: str
    tenant: str
    authorize_url: str
    token_url: str
    device_url: str
    scopes: list[str]
    mechanisms: list[str]
    flow: str
    authorized: bool  # tokens are stored in the keyring
    client_secret_stored: bool


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
    auth_method: str  # password | oauth2
    oauth: OAuthInfo | None
    after_fetch: str
    move_to_folder: str
    unread_only: bool
    initial: str
    notify_initial: bool
    authserv_id: str
    outgoing_for_department: bool
    system_channel: bool
    started_at: datetime | None  # when its starting point was recorded (add or first fetch)
    connected_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class ChannelSaved:
    """The result of ``create_channel``/``update_channel``."""

    channel: ChannelInfo
    became_outgoing: bool


def create_channel(draft: ChannelDraft, password: str | None,
                   client_secret: str | None = None) -> ChannelSaved:
    """Store a new channel and its password or OAuth client secret (in the keyring), all or
    nothing."""
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
        if client_secret:
            from eddymail.services.oauth import store as oauth_store
            from eddymail.services.oauth.settings import oauth_settings

            oauth_store.store_client_secret(oauth_settings(draft), client_secret)
    return ChannelSaved(describe(channel), became_outgoing)


def edit_channel(
    name: str, options: ChannelOptions, *, new_name: str | None = None,
    client_secret: str | None = None,
) -> ChannelSaved:
    """Change the settings of the channel called ``name``: only ``options`` that are given
    change (and its name, when ``new_name`` is); ``client_secret`` (OAuth 2.0) goes to the
    keyring."""
    channel = find_channel(name)
    from eddymail.services.channels.drafts import resolve_channel

    draft = resolve_channel(channel.name, options, existing=channel)
    if client_secret is not None and draft.auth_method != "oauth2":
        raise ValidationError("A client secret goes with --auth oauth2.")
    old_client_id = _client_id(channel)
    saved = update_channel(channel, draft, new_name=new_name)
    if client_secret is not None:
        from eddymail.services.oauth import store as oauth_store
        from eddymail.services.oauth.settings import oauth_settings

        oauth_store.store_client_secret(oauth_settings(find_channel(saved.channel.name)),
                                        client_secret)
    if old_client_id:
        # Moved to another app registration (or off OAuth 2.0): the old one's secret goes
        # once no channel is left on it, as with `channel remove`.
        _forget_registration_if_unused(old_client_id)
    return saved


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
            secrets.rename_channel_secrets(old_name, values["name"])
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
    secrets.delete_channel_secrets(channel.name)
    client_id = _client_id(channel)
    if client_id:
        _forget_registration_if_unused(client_id)


def describe(channel: Channel) -> ChannelInfo:
    """The plain view of a channel row."""
    from eddymail.services.channels.firstimport import format_initial

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
        auth_method=channel.auth_method,
        oauth=_oauth_info(channel) if channel.auth_method == "oauth2" else None,
        after_fetch=channel.after_fetch,
        move_to_folder=channel.move_to_folder,
        unread_only=channel.unread_only,
        initial=format_initial(channel.initial_limit, channel.initial_since),
        notify_initial=channel.notify_initial,
        authserv_id=channel.authserv_id,
        outgoing_for_department=department.outgoing_channel_id == channel.id,
        system_channel=settings.get_value(settings.SYSTEM_CHANNEL) == channel.id,
        started_at=channel.started_at,
        connected_at=channel.connected_at,
        created_at=channel.created_at,
    )


# --- helpers ------------------------------------------------------------------------------


def _oauth_info(channel: Channel) -> OAuthInfo:
    # Imported here (with the token store's TLS and file locks): only an OAuth 2.0 channel
    # is described with them, and finding a channel by name is every ingest's first step.
    from eddymail.services.oauth import store as oauth_store
    from eddymail.services.oauth.settings import oauth_settings

    settings = oauth_settings(channel)
    return OAuthInfo(
        provider=settings.provider, client_id=settings.client_id, tenant=settings.tenant,
        authorize_url=settings.authorize_url, token_url=settings.token_url,
        device_url=settings.device_url, scopes=list(settings.scopes),
        mechanisms=list(settings.mechanisms), flow=settings.default_flow,
        authorized=secrets.has_keyring_password(
            secrets.entry_name(channel.name, oauth_store.TOKENS)),
        client_secret_stored=secrets.has_keyring_password(
            secrets.entry_name(channel.name, oauth_store.CLIENT_SECRET))
        or (bool(settings.client_id) and secrets.has_keyring_password(
            oauth_store.registration_entry(settings.client_id))),
    )


def _client_id(channel: Channel) -> str | None:
    """The client id of the app registration an OAuth 2.0 channel signs in with."""
    if channel.auth_method != "oauth2":
        return None
    from eddymail.services.oauth.settings import oauth_settings

    return oauth_settings(channel).client_id or None


def _forget_registration_if_unused(client_id: str) -> None:
    """Delete the client secret of app registration ``client_id`` once no channel uses it."""
    from eddymail.services.oauth import store as oauth_store

    others = Channel.select().where(Channel.auth_method == "oauth2")
    if all(_client_id(other) != client_id for other in others):
        secrets.delete_password(oauth_store.registration_entry(client_id))


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
