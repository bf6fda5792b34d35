"""The error log: what mail servers answered when an operation failed, with a hint.

This is the seed's "журнал ошибок". Entries are written in their own transaction so a
failure is remembered even when the work around it is rolled back. Text is redacted of any
secret the caller knows, and of every password this process read, also inside base64 (as
AUTH PLAIN/LOGIN send it, whatever the login) before it is stored, as a second line of
defence behind the protocol layer's own care.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from eddymail.db.connection import database_proxy
from eddymail.db.models import Channel, ErrorLogEntry, utcnow
from eddymail.errors import EddymailError, MailServerError, NotFoundError, ValidationError
from eddymail.patterns import LazyPattern
from eddymail.secrets import scrub

REDACTED = "[redacted]"


@dataclass(frozen=True)
class LogEntry:
    """One error-log entry as shown by ``eddymail log``."""

    id: int
    time: datetime
    channel: str
    operation: str
    message: str
    answer: str
    hint: str


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced: plain, or inside any base64 token.

    The secrets are ``secrets`` plus every password in use right now (see
    ``eddymail.secrets.in_use``), so a caller that forgot to name one does not leak it.
    """
    return scrub(text, secrets, replacement=REDACTED)


def record_failure(
    *,
    channel: Channel | None,
    operation: str,
    error: EddymailError,
    secrets: Iterable[str] = (),
) -> LogEntry:
    """Write a failure to the error log and return the entry."""
    secrets = list(secrets)
    answer = error.answer if isinstance(error, MailServerError) else ""
    with database_proxy.atomic():
        row = ErrorLogEntry.create(
            channel=channel,
            channel_name=channel.name if channel else "",
            operation=operation,
            message=redact(error.message, secrets),
            answer=redact(answer, secrets),
            hint=redact(error.hint or "", secrets),
        )
    return _entry(row)


def list_entries(
    *, channel_name: str | None = None, since: datetime | None = None, limit: int = 50
) -> list[LogEntry]:
    """Newest entries first, optionally for one channel and after a time."""
    if limit < 1:
        raise ValidationError("--limit must be at least 1.")
    query = ErrorLogEntry.select().order_by(
        ErrorLogEntry.created_at.desc(), ErrorLogEntry.id.desc()
    )
    if channel_name:
        if not ErrorLogEntry.select().where(
            ErrorLogEntry.channel_name == channel_name
        ).exists() and (not Channel.select().where(Channel.name == channel_name).exists()):
            raise NotFoundError(f"No channel named '{channel_name}' (and no log entries for it).")
        query = query.where(ErrorLogEntry.channel_name == channel_name)
    if since is not None:
        query = query.where(ErrorLogEntry.created_at >= since)
    return [_entry(row) for row in query.limit(limit)]


_RELATIVE = LazyPattern(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since`` value: relative (``30m``, ``2h``, ``7d``, ``1w``) or an ISO date/time (UTC)."""
    text = text.strip()
    match = _RELATIVE.match(text.lower())
    if match:
        amount, unit = int(match.group(1)), _UNITS[match.group(2)]
        return (now or utcnow()) - timedelta(**{unit: amount})
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"Cannot read --since '{text}': use 30m, 2h, 7d, 1w or a date like 2026-11-27."
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _entry(row: ErrorLogEntry) -> LogEntry:
    return LogEntry(
        id=row.id,
        time=row.created_at,
        channel=row.channel_name,
        operation=row.operation,
        message=row.message,
        answer=row.answer,
        hint=row.hint,
    )
