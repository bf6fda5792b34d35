"""Team-wide settings stored in the database (``eddymail settings list|get|set``).

Each setting is declared once with its default, a sentence of documentation and a parser
that turns what a person types into the stored value (or refuses it with a reason).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eddymail.db.connection import database_proxy
from eddymail.db.models import Channel, Setting, utcnow
from eddymail.errors import NotFoundError, ValidationError
from eddymail.mail.message.subjects import DEFAULT_TAG_FORMAT, validate_tag_format

SYSTEM_CHANNEL = "system-channel"
LANGUAGE = "language"
HELPDESK_NAME = "helpdesk-name"
TAG_FORMAT = "tag-format"
AUTO_MAIL_PER_RECIPIENT = "auto-mail-per-recipient"
AUTO_MAIL_PER_DAY = "auto-mail-per-day"
REPLY_FROM = "reply-from"
REPLY_FROM_CHOICES = ("agent", "department", "both")
LANGUAGES = ("en", "ru")


@dataclass(frozen=True)
class SettingSpec:
    """A declared team setting."""

    key: str
    default: Any
    description: str
    parse: Callable[[str], Any]
    show: Callable[[Any], str] = str


@dataclass(frozen=True)
class SettingValue:
    """A setting as shown to people and scripts."""

    key: str
    value: str
    default: str
    is_default: bool
    description: str


def _parse_channel(text: str) -> int | None:
    text = text.strip()
    if text in ("", "none"):
        return None
    channel = Channel.get_or_none(Channel.name == text)
    if channel is None:
        raise NotFoundError(f"No channel named '{text}': see eddymail channel list.")
    if not channel.smtp_host:
        raise ValidationError(
            f"Channel '{text}' has no outgoing (SMTP) settings, so it cannot send "
            f"notifications: eddymail channel edit {text} --smtp-host HOST."
        )
    return channel.id


def _show_channel(channel_id: int | None) -> str:
    if channel_id is None:
        return ""
    channel = Channel.get_or_none(Channel.id == channel_id)
    return channel.name if channel else ""


def _parse_language(text: str) -> str:
    text = text.strip().lower()
    if text not in LANGUAGES:
        raise ValidationError(f"Language must be one of: {', '.join(LANGUAGES)}.")
    return text


def _parse_tag_format(text: str) -> str:
    text = text.strip()
    validate_tag_format(text)
    return text


def _parse_count(text: str) -> int:
    if not text.strip().isdigit():
        raise ValidationError(f"Expected a whole number, not '{text}'.")
    return int(text.strip())


def _parse_reply_from(text: str) -> str:
    text = text.strip().lower()
    if text not in REPLY_FROM_CHOICES:
        raise ValidationError(f"reply-from must be one of: {', '.join(REPLY_FROM_CHOICES)}.")
    return text


def _parse_text(text: str) -> str:
    return " ".join(text.split())


SETTINGS: dict[str, SettingSpec] = {
    spec.key: spec
    for spec in (
        SettingSpec(
            SYSTEM_CHANNEL,
            None,
            "Channel that sends system notifications (registration and the like); "
            "empty: the outgoing channel of the ticket's department.",
            _parse_channel,
            _show_channel,
        ),
        SettingSpec(
            LANGUAGE,
            "en",
            "Language of the shipped notification templates (en, ru).",
            _parse_language,
        ),
        SettingSpec(
            HELPDESK_NAME,
            "",
            "Name customers know the helpdesk by, used in notifications; "
            "empty: the department's name.",
            _parse_text,
        ),
        SettingSpec(
            TAG_FORMAT,
            DEFAULT_TAG_FORMAT,
            "Ticket tag in subjects; {id} stands for the ticket number.",
            _parse_tag_format,
        ),
        SettingSpec(
            REPLY_FROM,
            "both",
            "Display name on replies: agent (Anna Petrova), department (Support) or both "
            "(Anna Petrova, Support).",
            _parse_reply_from,
        ),
        SettingSpec(
            AUTO_MAIL_PER_RECIPIENT,
            3,
            "At most this many automatic mails (notifications) to one address per 24 hours.",
            _parse_count,
        ),
        SettingSpec(
            AUTO_MAIL_PER_DAY,
            500,
            "At most this many automatic mails in all per 24 hours (a flood brake).",
            _parse_count,
        ),
    )
}


def _spec(key: str) -> SettingSpec:
    try:
        return SETTINGS[key]
    except KeyError:
        raise NotFoundError(
            f"Unknown setting '{key}'; known settings: {', '.join(SETTINGS)}."
        ) from None


def get_value(key: str) -> Any:
    """The stored (or default) value of a setting, as the code uses it."""
    spec = _spec(key)
    row = Setting.get_or_none(Setting.key == key)
    return spec.default if row is None else row.value


def get_setting(key: str) -> SettingValue:
    """A setting as shown to people and scripts."""
    spec = _spec(key)
    row = Setting.get_or_none(Setting.key == key)
    value = spec.default if row is None else row.value
    return SettingValue(
        key=key,
        value=_shown(spec, value),
        default=_shown(spec, spec.default),
        is_default=row is None,
        description=spec.description,
    )


def list_settings() -> list[SettingValue]:
    """Every declared setting with its current value."""
    return [get_setting(key) for key in SETTINGS]


def set_setting(key: str, text: str) -> SettingValue:
    """Parse and store a setting. An empty value resets it to its default."""
    spec = _spec(key)
    with database_proxy.atomic():
        if text.strip() == "":
            Setting.delete().where(Setting.key == key).execute()
        else:
            value = spec.parse(text)
            Setting.insert(key=key, value=value, updated_at=utcnow()).on_conflict(
                conflict_target=[Setting.key],
                update={Setting.value: value, Setting.updated_at: utcnow()},
            ).execute()
    return get_setting(key)


def forget_channel(channel_id: int) -> None:
    """Unset settings that point at a channel that is being removed."""
    row = Setting.get_or_none(Setting.key == SYSTEM_CHANNEL)
    if row is not None and row.value == channel_id:
        row.delete_instance()


def _shown(spec: SettingSpec, value: Any) -> str:
    return "" if value is None else spec.show(value)
