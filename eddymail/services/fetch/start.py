"""A channel's starting point: which mail is "old" (left alone), "initial" and "new".

Recorded once per mailbox, as early as possible: at ``channel add`` when the first import is
chosen there (so mail that arrives, or that a person reads, before the first fetch is still
taken), else at the first fetch.

- IMAP: the folder's UIDVALIDITY and its highest UID (from UIDNEXT) are the baseline; every
  UID above it is new and taken, read or not. Of the mail at or below it, the chosen initial
  messages are written to the ledger as pending: the last N unread ones, or every message
  since a date (read or not); the rest is old for good.
- POP3: the current UIDL list; the chosen last N are pending, the others skipped for good.
  Whatever UIDL is not in the ledger afterwards is new.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from eddymail import secrets
from eddymail.db.connection import database_proxy
from eddymail.db.models import Channel, ChannelCursor, LedgerEntry, utcnow
from eddymail.errors import EddymailError, KeyringUnavailableError, ValidationError
from eddymail.mail.wire.imap import ImapClient
from eddymail.mail.wire.pop3 import Pop3Client
from eddymail.services import errorlog
from eddymail.services.channels.endpoints import incoming_endpoint, provider_hints_of
from eddymail.services.channels.firstimport import INITIAL_ALL, POP3_HAS_NO_DATES, FirstImport
from eddymail.services.channels.lookup import find_channel
from eddymail.services.channels.signin import Credential, with_sign_in
from eddymail.services.ingest.records import PENDING, SKIPPED

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class StartingPoint:
    """What ``channel add`` recorded (or why it could not)."""

    channel: str
    recorded: bool
    initial: int = 0  # messages chosen for the first fetch
    left_alone: int = 0  # messages already there that will never be taken (POP3: counted)
    baseline_uid: int | None = None  # IMAP
    uidvalidity: int | None = None
    error: str | None = None
    hint: str | None = None


def record_starting_point(name: str, *, timeout: float) -> StartingPoint:
    """Connect to a new channel's mailbox and record its starting point now.

    A server that cannot be reached is not fatal: the channel stays as stored, the failure
    goes to the error log, and the first fetch records the starting point instead.
    """
    channel = find_channel(name)
    try:
        return with_sign_in(channel, timeout=timeout, protocol=channel.protocol,
                            action=lambda credential: _record(channel, credential, timeout))
    except KeyringUnavailableError:
        raise  # the environment's problem, not the mailbox's: exit 4 as anywhere else
    except EddymailError as error:
        entry = errorlog.record_failure(channel=channel, operation="record starting point",
                                        error=error, secrets=secrets.carried_by(error))
        return StartingPoint(channel.name, False, error=entry.message,
                             hint=entry.hint or None)


def _record(channel: Channel, credential: Credential, timeout: float) -> StartingPoint:
    endpoint = incoming_endpoint(channel, timeout)
    if channel.protocol == "imap":
        with ImapClient(endpoint, credential, provider_hints_of(channel)) as imap:
            status = imap.select(channel.folder, readonly=True)
            baseline = highest_uid(imap, status.uidnext)
            initial = imap_initial(imap, baseline, first_import_of(channel))
        record_imap(channel, status.uidvalidity, baseline, initial)
        return StartingPoint(channel.name, True, len(initial), 0, baseline,
                             status.uidvalidity)
    with Pop3Client(endpoint, credential, provider_hints_of(channel)) as pop:
        listing = pop.uidl()
        pop.quit()
    chosen = pop3_initial(listing, first_import_of(channel))
    record_pop3(channel, listing, chosen)
    return StartingPoint(channel.name, True, len(chosen), len(listing) - len(chosen))


def first_import_of(channel: Channel) -> FirstImport:
    """The channel's own first-import choice."""
    return FirstImport(channel.initial_limit, channel.initial_since)


def highest_uid(client: ImapClient, uidnext: int | None) -> int:
    """The baseline: the highest UID in the folder now (0 when it is empty)."""
    if uidnext:
        return uidnext - 1
    uids = client.search_uids("ALL")
    return max(uids) if uids else 0


def imap_initial(client: ImapClient, baseline: int, first: FirstImport) -> list[int]:
    """The UIDs at or below the baseline that the first fetch takes."""
    if baseline == 0 or (first.limit == 0 and first.since is None):
        return []
    if first.since is not None:
        return sorted(uid for uid in client.search_uids(f"SINCE {imap_date(first.since)}")
                      if uid <= baseline)
    unread = sorted(uid for uid in client.search_uids("UNSEEN") if uid <= baseline)
    return unread if first.limit == INITIAL_ALL else unread[-first.limit:]


def record_imap(channel: Channel, uidvalidity: int, baseline: int,
                initial: list[int]) -> ChannelCursor:
    """Store the baseline and the chosen initial messages of the channel's folder."""
    with database_proxy.atomic():
        cursor = ChannelCursor.create(channel=channel, folder=channel.folder,
                                      uidvalidity=uidvalidity, baseline_uid=baseline)
        if initial:
            LedgerEntry.insert_many(
                [{"channel": channel, "source": "imap", "folder": channel.folder,
                  "uidvalidity": uidvalidity, "uid": uid, "sha256": "",
                  "status": PENDING} for uid in initial]).execute()
        _started(channel)
    return cursor


def pop3_initial(listing: list[tuple[int, str]], first: FirstImport) -> set[str]:
    """The unique ids of the messages the first fetch takes."""
    if first.since is not None:
        raise ValidationError(POP3_HAS_NO_DATES)
    limit = first.limit
    chosen = listing if limit == INITIAL_ALL else (listing[-limit:] if limit else [])
    return {uidl for _, uidl in chosen}


def record_pop3(channel: Channel, listing: list[tuple[int, str]],
                chosen: set[str]) -> dict[str, tuple[str, bool]]:
    """Chosen messages pending, all others skipped for good; the ledger as fetch reads it."""
    ledger: dict[str, tuple[str, bool]] = {}
    with database_proxy.atomic():
        for _, uidl in listing:
            status = PENDING if uidl in chosen else SKIPPED
            LedgerEntry.create(channel=channel, source="pop3", uidl=uidl, sha256="",
                               status=status, server_done=status == SKIPPED)
            ledger[uidl] = (status, status == SKIPPED)
        _started(channel)
    return ledger


def imap_date(day: date) -> str:
    """A date as IMAP SEARCH wants it (``1-Nov-2026``), whatever the locale."""
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}"


def _started(channel: Channel) -> None:
    if channel.started_at is None:
        channel.started_at = utcnow()
        Channel.update(started_at=channel.started_at).where(Channel.id == channel.id).execute()
