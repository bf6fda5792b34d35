"""The pipeline from raw bytes to a ticket: parse, deduplicate, thread, store, notify.

``ingest_raw`` is shared by ``fetch`` (IMAP, POP3) and ``ingest`` (files, stdin, Maildir,
mbox). Everything one message changes (raw bytes, ledger row, user, ticket, thread message,
attachments, queued notifications) is written in one transaction; the caller touches the
mail server only after it returned. A message that cannot be parsed is quarantined with
its bytes and the run goes on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from eddymail.crashpoints import crash_point
from eddymail.db import blobs, fastsql, keylocks
from eddymail.db.connection import database_proxy
from eddymail.db.models import (
    Attachment,
    Channel,
    Department,
    ErrorLogEntry,
    LedgerEntry,
    Message,
    OutboxItem,
    RawMessage,
    Ticket,
    utcnow,
)
from eddymail.errors import MessageParseError, NotFoundError
from eddymail.mail.message.addresskeys import address_key
from eddymail.services.actors import describe_actor
from eddymail.services.ingest.records import (
    DUPLICATE,
    FOLLOWUP,
    NEW_TICKET,
    PENDING,
    QUARANTINED,
    RECORDED,
    IngestOptions,
    IngestResult,
    Prepared,
    Source,
)
from eddymail.services.outgoing import notifications, staff
from eddymail.services.tickets import history, search, users

# The parser (and sender verification, and threading, which read what it found) is
# imported by the functions that handle a message: a fetch that finds no new mail, run
# by cron every minute, never loads it.
if TYPE_CHECKING:
    from eddymail.mail.message.parse import ParsedMessage
    from eddymail.services.ingest import staffanswers

log = logging.getLogger("eddymail.ingest")

def prepare(raw: bytes, options: IngestOptions) -> Prepared:
    """Parse ``raw``: the slow part, done before the write transaction so that no lock is
    held meanwhile (a fetch batch parses all its messages first, then stores them)."""
    from eddymail.mail.message.parse import parse_message

    try:
        return Prepared(raw, hashlib.sha256(raw).hexdigest(),
                        parse_message(raw, options.limits), None)
    except MessageParseError as problem:
        return Prepared(raw, hashlib.sha256(raw).hexdigest(), None, problem.message)


def ingest_raw(
    raw: bytes | Prepared,
    *,
    channel: Channel | None,
    department: Department,
    source: Source,
    options: IngestOptions,
) -> IngestResult:
    """Turn one raw (or prepared) message into a ticket, a follow-up, a record or a
    quarantine entry.

    Joins the caller's transaction (a fetch batch) or runs in its own, again if PostgreSQL
    broke a deadlock with another host by failing it.
    """
    prepared = raw if isinstance(raw, Prepared) else prepare(raw, options)

    def store() -> IngestResult:
        return _ingest_parsed(prepared, channel=channel, department=department,
                              source=source, options=options)

    if database_proxy.in_transaction():
        # The caller's transaction: a fetch batch (services/fetch/batch.py) runs again
        # without a message the database refused, so none needs a savepoint of its own.
        return store()

    def own_transaction() -> IngestResult:
        with database_proxy.atomic():
            return store()

    return keylocks.retrying(own_transaction)


def _ingest_parsed(prepared: Prepared, *, channel: Channel | None, department: Department,
                   source: Source, options: IngestOptions) -> IngestResult:
    """The transactional part of ``ingest_raw``: everything the message changes."""
    raw, sha256, parsed, error = prepared.raw, prepared.sha256, prepared.parsed, prepared.error
    # Writers on other hosts about the same bytes or the same thread wait here until this
    # transaction ends, and then see its ticket (one ticket per thread, one copy per mail).
    keylocks.hold(_lock_names(sha256, parsed))
    entry = _ledger_entry(channel, source, sha256)
    if entry is not None and entry.status != PENDING:
        return _seen_before(entry)
    stored_raw, fresh = _store_raw(raw, sha256)
    if parsed is None:
        return _quarantine(channel, source, entry, stored_raw, sha256, len(raw), error or "")
    duplicate, reused = _duplicate_of(parsed, channel, stored_raw, fresh)
    if duplicate is not None:
        _record(channel, source, entry, sha256=sha256, size=len(raw),
                message_id=parsed.message_id, status=DUPLICATE, raw=stored_raw,
                ticket_message=duplicate)
        return IngestResult(DUPLICATE, duplicate.ticket_id, duplicate.id, duplicate.subject)
    result, message = _store(parsed, channel, department, stored_raw, options,
                             reused=reused)
    _record(channel, source, entry, sha256=sha256, size=len(raw),
            message_id=parsed.message_id, status="imported", raw=stored_raw,
            ticket_message=message)
    crash_point("ingest stored")
    return result


# A thread key per Message-ID a message names; a long References chain adds only its root
# and its most recent entries (where another message of the thread is to be found).
_THREAD_KEYS_PER_MESSAGE = 12


def _lock_names(sha256: str, parsed: ParsedMessage | None) -> list[str]:
    """What this message's transaction must not race on: its bytes and its thread."""
    names = [f"raw:{sha256}"]
    if parsed is not None:
        references = list(parsed.references)
        if len(references) > _THREAD_KEYS_PER_MESSAGE:
            references = references[:1] + references[-(_THREAD_KEYS_PER_MESSAGE - 1):]
        ids = [parsed.message_id, *parsed.in_reply_to, *references]
        names.extend(f"thread:{message_id}" for message_id in ids if message_id)
    return names


def reprocess(raw: bytes, *, entry: LedgerEntry, channel: Channel | None,
              department: Department, options: IngestOptions) -> IngestResult:
    """Run a quarantined message through the pipeline again, updating its ledger row."""
    from eddymail.mail.message.parse import parse_message

    try:
        parsed = parse_message(raw, options.limits)
    except MessageParseError as problem:
        LedgerEntry.update(error=problem.message, updated_at=utcnow()).where(
            LedgerEntry.id == entry.id).execute()
        return IngestResult(QUARANTINED, error=problem.message)
    with database_proxy.atomic():
        stored_raw = RawMessage(id=entry.raw_id)
        duplicate, reused = _duplicate_of(parsed, channel, stored_raw, fresh=False)
        if duplicate is not None:
            result, message = IngestResult(DUPLICATE, duplicate.ticket_id, duplicate.id,
                                           duplicate.subject), duplicate
        else:
            result, message = _store(parsed, channel, department, stored_raw, options,
                                     reused=reused)
        LedgerEntry.update(
            status="imported" if duplicate is None else DUPLICATE, error=None,
            message_id=parsed.message_id, ticket_message=message, updated_at=utcnow(),
        ).where(LedgerEntry.id == entry.id).execute()
    return result


def quarantine_oversized(
    headers: bytes, *, channel: Channel, source: Source, size: int, limit: int
) -> IngestResult:
    """Record a message too big to download: its headers only, and why."""
    sha256 = hashlib.sha256(headers).hexdigest()
    reason = f"message is {size} bytes, over the limit of {limit} bytes; only headers kept"
    with database_proxy.atomic():
        entry = _ledger_entry(channel, source, sha256)
        if entry is not None and entry.status != PENDING:
            return _seen_before(entry)
        stored_raw, _ = _store_raw(headers, sha256, headers_only=True)
        # server_done from the start: the body exists only on the server, so no after-fetch
        # action (move, delete, DELE) may ever touch this message.
        return _quarantine(channel, source, entry, stored_raw, sha256, size, reason,
                           server_done=True)


# --- steps ---------------------------------------------------------------------------------


# What the pipeline reads of a ledger row (its dates would only be parsed to be dropped).
_LEDGER_COLUMNS = ("id", "status", "error", "ticket_message")


def _ledger_entry(channel: Channel | None, source: Source, sha256: str) -> LedgerEntry | None:
    """The ledger row of this very delivery: finished before, or announced as pending."""
    key = source.ledger_key(channel)
    if key is None:  # a file: the same bytes for the same channel are the same delivery
        key = {"channel": channel.id if channel else None, "source": "file", "sha256": sha256}
    return fastsql.first(LedgerEntry, columns=_LEDGER_COLUMNS, **key)


def _record(channel: Channel | None, source: Source, entry: LedgerEntry | None,
            **values) -> None:
    """Write the outcome to the ledger, filling in the row of a pending delivery."""
    if entry is not None:
        fastsql.update(LedgerEntry, entry.id, updated_at=utcnow(), **values)
        return
    fastsql.insert(
        LedgerEntry, channel=channel, source=source.kind, folder=source.folder,
        uidvalidity=source.uidvalidity, uid=source.uid, uidl=source.uidl, **values,
    )


def _seen_before(entry: LedgerEntry) -> IngestResult:
    message = entry.ticket_message if entry.ticket_message_id else None
    if message is None:
        return IngestResult(DUPLICATE, error=entry.error)
    return IngestResult(DUPLICATE, message.ticket_id, message.id, message.subject)


def _store_raw(raw: bytes, sha256: str, headers_only: bool = False) -> tuple[RawMessage, bool]:
    """The stored copy of these bytes (kept once however often they arrive); True if new."""
    # New bytes are the rule: one INSERT that gives way to an existing copy (unique sha256),
    # and a look for that copy only when it did.
    new_id = blobs.insert_new_with_blob(RawMessage, "data", raw, sha256=sha256, size=len(raw),
                                        headers_only=headers_only)
    if new_id is not None:
        return RawMessage(id=new_id), True
    existing = fastsql.first(RawMessage, columns=("id",), sha256=sha256)
    if existing is None:  # the insert was refused for another reason than an existing copy
        raise RuntimeError(f"raw message {sha256} could not be stored")
    return existing, False


_SAME_CONTENT_COLUMNS = ("id", "ticket", "subject", "from_address", "sent_at", "body_text")


def _duplicate_of(parsed: ParsedMessage, channel: Channel | None, stored_raw: RawMessage,
                  fresh: bool) -> tuple[Message | None, bool]:
    """(the earlier copy of this message, whether its Message-ID was used by another one).

    A copy has the same bytes, or the same Message-ID to the same channel *and* the same
    content (sender, Date, text): the same mail through a second route differs only in its
    trace headers. A Message-ID alone proves nothing (a broken client reuses one, a list
    rewrites the message, a forger pre-empts the ID of a mail he expects): a different
    message under a known ID is stored, threaded by its own evidence, and marked.
    """
    if not fresh:  # bytes seen before: the message made of them, if any
        same_bytes = Message.select().where(Message.raw == stored_raw).first()
        if same_bytes is not None:
            return same_bytes, False
    if not parsed.message_id:
        return None, False
    where = {"channel": channel.id if channel else None, "message_id": parsed.message_id,
             "direction": "in"}
    earlier = fastsql.first(Message, columns=_SAME_CONTENT_COLUMNS, **where)
    if earlier is None:
        return None, False
    if _same_content(parsed, earlier):
        return earlier, False
    # The ID was reused: perhaps more than once, so look at every message that has it.
    others = Message.select(*(getattr(Message, name) for name in _SAME_CONTENT_COLUMNS)).where(
        *(getattr(Message, name) == value for name, value in where.items()))
    copy = next((other for other in others if _same_content(parsed, other)), None)
    return copy, copy is None


def _same_content(parsed: ParsedMessage, stored: Message) -> bool:
    """Whether ``stored`` holds what ``parsed`` says: the same sender, Date and text."""
    sender = parsed.from_.address if parsed.sender_valid and parsed.from_ else _raw_sender(parsed)
    return (address_key(sender) == address_key(stored.from_address)
            and _sent_at(parsed) == stored.sent_at
            and " ".join(parsed.body_text.split()) == " ".join(stored.body_text.split()))


def _sent_at(parsed: ParsedMessage) -> datetime | None:
    """The Date header as it is stored (the sender's wall-clock time, as written)."""
    return parsed.date.replace(tzinfo=None) if parsed.date else None


def _quarantine(channel: Channel | None, source: Source, entry: LedgerEntry | None,
                stored_raw: RawMessage, sha256: str, size: int, error: str,
                server_done: bool = False) -> IngestResult:
    _record(channel, source, entry, sha256=sha256, size=size, status=QUARANTINED, error=error,
            raw=stored_raw, server_done=server_done)
    ErrorLogEntry.create(
        channel=channel, channel_name=channel.name if channel else "",
        operation="parse message", message=f"Message quarantined: {error}",
        hint="See eddymail mail list --quarantined; eddymail mail retry ID parses it again.",
    )
    log.info("quarantined a message: %s", error)  # counted in the run summary
    return IngestResult(QUARANTINED, error=error)


def automatic_kind(parsed: ParsedMessage, own_addresses: set[str]) -> str | None:
    """Why this mail is not a person writing to us, if it is not: own, bounce, auto_reply, list."""
    sender = address_key(parsed.from_.address) if parsed.from_ else ""
    if sender and sender in own_addresses:
        return "own"
    if parsed.bounce:
        return "bounce"
    if parsed.auto_reply:
        return "auto_reply"
    if parsed.mailing_list:
        return "mailing_list"
    return None


def _store(parsed: ParsedMessage, channel: Channel | None, department: Department,
           stored_raw: RawMessage, options: IngestOptions,
           reused: bool = False) -> tuple[IngestResult, Message]:
    result, message = _store_message(parsed, channel, department, stored_raw, options)
    if not reused:
        return result, message
    fastsql.update(Message, message.id, message_id_reused=True)
    log.info("message %s: its Message-ID was used before by a different message",
             message.id)
    notice = "Message-ID used before by a different message: stored, marked"
    return dataclasses.replace(result, notices=(*result.notices, notice)), message


def _store_message(parsed: ParsedMessage, channel: Channel | None,
                   department: Department, stored_raw: RawMessage,
                   options: IngestOptions) -> tuple[IngestResult, Message]:
    from eddymail.mail.message import authresults
    from eddymail.services.ingest import staffanswers
    from eddymail.services.ingest.threads import find_thread

    kind = automatic_kind(parsed, options.own_addresses)
    auth = sender_verification(parsed, channel)
    # Mail that failed sender verification, or whose From names no single address, is kept,
    # marked, and given no power: it registers nobody (not even its Cc), triggers no mail,
    # and can neither join nor reopen an existing ticket.
    identified = parsed.sender_valid and parsed.from_ is not None
    trusted = auth not in authresults.UNVERIFIED and identified
    # Only a sender the provider verified may bring others into a ticket: anyone can write a
    # Cc into forged mail. Unverified mail's Cc stay on the message, shown, not added.
    verified = auth == authresults.PASS and identified
    if kind == "bounce":
        ticket = _bounced_ticket(parsed)
        message = _message(parsed, ticket, channel, None, stored_raw, kind, auth,
                           direction="system")
        if ticket is not None:
            _touch(ticket, customer=False)
        return IngestResult(RECORDED, ticket.id if ticket else None, message.id,
                            parsed.subject), message

    match = find_thread(parsed, options.tag_format, trusted=trusted)
    if kind in ("own", "auto_reply"):
        # Recorded; an auto-reply may sit in the ticket it answers but changes nothing there.
        ticket = match.ticket if kind == "auto_reply" else None
        message = _message(parsed, ticket, channel, None, stored_raw, kind, auth)
        return IngestResult(RECORDED, ticket.id if ticket else None, message.id,
                            parsed.subject), message

    if kind is None:
        answer = staffanswers.answered_notification(parsed, options.staff_run, trusted=trusted)
        if answer is not None:
            return _agent_note(parsed, answer, channel, stored_raw, auth)

    sender = parsed.from_ if identified else None
    user, created = (users.get_or_create_user(sender.address, sender.name) if sender and trusted
                     else (None, False))
    cc_users = [users.get_or_create_user(a.address, a.name)[0] for a in parsed.cc
                if verified and "@" in a.address  # a domainless name is no participant
                and address_key(a.address) not in options.own_addresses]
    notices: list[str] = []
    if match.ticket is not None:
        ticket = match.ticket
        message = _message(parsed, ticket, channel, user, stored_raw, kind, auth)
        if ticket.status == "closed":
            notices.append(f"ticket #{ticket.id} reopened")
            history.record(ticket, history.CUSTOMER, history.REOPEN, message=message,
                           detail={"from": "closed", "to": "open"})
        # The customer spoke: whether we were waiting for him or had closed it, it is ours again.
        _touch(ticket, customer=True)
        ticket.status = "open"  # as _touch wrote it, for the staff notification
        users.add_participants(ticket, cc_users)
        if options.notify and options.staff_run is not None:
            told = staff.notify_customer_reply(ticket, message, options.staff_run)
            if told:
                notices.append(f"{told} agent(s) notified")
        return IngestResult(FOLLOWUP, ticket.id, message.id, parsed.subject,
                            notices=tuple(notices)), message

    ticket = fastsql.create(
        Ticket,
        subject=parsed.subject,
        department=department,
        requester=user,
        requester_address=address_key(sender.address) if sender else _raw_sender(parsed),
        channel=channel,
        carried_tag=match.refused_tag,
        awaiting_reply=True,
        message_count=1,
        created_at=utcnow(),
        last_activity_at=utcnow(),
    )
    message = _message(parsed, ticket, channel, user, stored_raw, kind, auth)
    users.add_participants(ticket, cc_users)
    if auth == authresults.FAIL:
        notices.append("sender verification failed: nobody registered, nothing sent")
    elif auth == authresults.MISSING:
        notices.append("sender not verified (no Authentication-Results from "
                       f"{channel.authserv_id if channel else ''}): nobody registered, "
                       "nothing sent")
    elif not trusted:
        notices.append("unidentified sender (not one From address): nobody registered, "
                       "nothing sent")
    elif user is not None and options.notify and kind is None and not parsed.automatic_reasons:
        # A new sender learns he is registered (that letter carries the ticket number too);
        # a known customer gets the plain acknowledgement of his new ticket.
        name = "registration" if created else "ticket_created"
        item, why_not = notifications.queue_notification(
            name, ticket=ticket, user=user, department=department,
            sender=options.sender_for(department), own=options.own_addresses)
        notices.append(f"{name} notification queued" if item else
                       f"no {name} notification: {why_not}")
    if options.notify and options.staff_run is not None:
        told = staff.notify_new_ticket(ticket, message, department, options.staff_run)
        if told:
            notices.append(f"{told} agent(s) notified")
    return IngestResult(NEW_TICKET, ticket.id, message.id, parsed.subject,
                        notices=tuple(notices)), message


def _agent_note(parsed: ParsedMessage, answer: staffanswers.StaffAnswer,
                channel: Channel | None, stored_raw: RawMessage,
                auth: str | None) -> tuple[IngestResult, Message]:
    """Store an agent's answer to a staff notification as that agent's internal note."""
    ticket, agent = answer.ticket, answer.agent
    message = _message(parsed, ticket, channel, None, stored_raw, None, auth, direction="note")
    history.record(ticket, describe_actor(agent), history.NOTE, message=message,
                   detail={"by": "mail"})
    _touch(ticket, customer=False)
    return IngestResult(FOLLOWUP, ticket.id, message.id, parsed.subject, notices=(
        f"a note by agent {agent.handle} (an answer to a staff notification)",)), message


def sender_verification(parsed: ParsedMessage, channel: Channel | None) -> str | None:
    """pass/fail/none/missing by the channel's trusted Authentication-Results; None: not
    configured."""
    if channel is None or not channel.authserv_id or parsed.from_ is None:
        return None
    from eddymail.mail.message import authresults

    domain = parsed.from_.address.rpartition("@")[2]
    return authresults.verify_sender(parsed.authentication_results, channel.authserv_id, domain)


def _bounced_ticket(parsed: ParsedMessage) -> Ticket | None:
    original = parsed.bounce_original_message_id
    if not original:
        return None
    item = OutboxItem.get_or_none(OutboxItem.message_id == original)
    if item is not None and item.ticket_id is not None:
        return Ticket.get_by_id(item.ticket_id)
    message = Message.get_or_none((Message.message_id == original) & Message.ticket.is_null(False))
    return Ticket.get_by_id(message.ticket_id) if message else None


def _message(parsed: ParsedMessage, ticket: Ticket | None, channel: Channel | None, user,
             stored_raw: RawMessage, kind: str | None, auth: str | None,
             direction: str = "in") -> Message:
    sender = parsed.from_ if parsed.sender_valid else None  # None: not identified

    def addresses(items) -> list[dict]:
        return [{"address": a.address, "name": a.name} for a in items]

    message = fastsql.create(
        Message,
        ticket=ticket,
        direction=direction,
        channel=channel,
        user=user,
        # An unidentified sender is shown by every address his From named, so the one he
        # put first (perhaps a real customer's) does not pass for the whole truth.
        author_name=sender.name if sender else "",
        from_address=sender.address if sender else _raw_sender(parsed),
        from_name=sender.name if sender else "",
        to=addresses(parsed.to),
        cc=addresses(parsed.cc),
        reply_to=addresses(parsed.reply_to),
        subject=parsed.subject,
        body_text=parsed.body_text,
        has_html=parsed.has_html,
        sent_at=parsed.date.replace(tzinfo=None) if parsed.date else None,
        message_id=parsed.message_id,
        in_reply_to=list(parsed.in_reply_to),
        references=list(parsed.references),
        raw=stored_raw,
        automatic=kind,
        auth_status=auth,
    )
    search.index_message(message)
    for attachment in parsed.attachments:
        blobs.create_with_blob(
            Attachment,
            "data",
            attachment.data,
            message=message,
            filename=attachment.filename,
            original_filename=attachment.original_filename,
            content_type=attachment.content_type,
            size=attachment.size,
            sha256=hashlib.sha256(attachment.data).hexdigest(),
            content_id=attachment.content_id,
            inline=attachment.inline,
        )
    return message


def _touch(ticket: Ticket, *, customer: bool) -> None:
    """One more message in the ticket; from the customer, it also becomes ours to answer."""
    values = {Ticket.message_count: Ticket.message_count + 1, Ticket.last_activity_at: utcnow()}
    if customer:
        values.update({Ticket.awaiting_reply: True, Ticket.status: "open"})
    Ticket.update(values).where(Ticket.id == ticket.id).execute()


def _raw_sender(parsed: ParsedMessage) -> str:
    return ", ".join(a.address for a in parsed.from_all)[:250]


# --- where a message goes -------------------------------------------------------------------


def destination(channel_name: str | None, department_name: str | None,
                find_channel: Callable[[str], Channel],
                find_department: Callable[[str], Department]) -> tuple[Channel | None, Department]:
    """The channel and department for ``ingest``: the channel's, a named one, or the only one."""
    if channel_name:
        channel = find_channel(channel_name)
        department = Department.get_by_id(channel.department_id)
        if department_name and find_department(department_name).id != department.id:
            department = find_department(department_name)
        return channel, department
    if department_name:
        return None, find_department(department_name)
    departments = list(Department.select().limit(2))
    if len(departments) == 1:
        return None, departments[0]
    if not departments:
        raise NotFoundError(
            "There is no department yet: eddymail department add Support (or run eddymail init)."
        )
    raise NotFoundError("Several departments exist: say where the mail goes with --channel NAME "
                        "or --department NAME.")
