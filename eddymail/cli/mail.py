"""``eddymail mail``: raw messages, the ledger and the quarantine."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.errors import EddymailError, UsageError
from eddymail.services.ingest import quarantine
from eddymail.services.ingest import rawmail as messages
from eddymail.services.ingest.records import QUARANTINED, IngestOptions


@click.group("mail")
def mail_group() -> None:
    """Raw messages: inspect a file, list what was taken, retry the quarantine.

    \b
    Examples:
      eddymail mail inspect message.eml
      eddymail mail list --quarantined
    """


@mail_group.command("inspect")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@json_option
def inspect(file: Path) -> None:
    """Show what eddymail makes of one message file (a debugging aid; nothing is stored).

    \b
    Example:
      eddymail mail inspect suspicious.eml --json
    """
    parsed = messages.inspect_file(file)
    out = state().output
    # reply_text: the new text without the quoted history, exactly as ``ticket show`` folds it.
    document = {**parsed.to_json(), "reply_text": messages.reply_text(parsed.body_text)}

    def render() -> None:
        sender = document["from"]
        out.fields([
            ("Subject", document["subject"]),
            ("From", f"{sender['address']} ({sender['name']})" if sender and sender["name"]
             else sender["address"] if sender else "(none)"),
            ("To", ", ".join(a["address"] for a in document["to"]) or "-"),
            ("Cc", ", ".join(a["address"] for a in document["cc"]) or "-"),
            ("Reply-To", ", ".join(a["address"] for a in document["reply_to"]) or "-"),
            ("Date", document["date"] or "-"),
            ("Message-ID", document["message_id"] or "-"),
            ("In-Reply-To", " ".join(document["in_reply_to"]) or "-"),
            ("HTML", document["has_html"]),
            ("Automatic", ", ".join(kind for kind in ("auto_reply", "bounce", "mailing_list")
                                    if document[kind]) or "no"),
        ])
        for attachment in document["attachments"]:
            out.line(f"  attachment: {attachment['filename']} ({attachment['content_type']}, "
                     f"{attachment['size']} bytes)", style="dim")
        out.line("")
        out.text(document["body_text"])

    out.emit(document, render)


@mail_group.command("list")
@click.option("--quarantined", is_flag=True, help="Only messages that could not be filed.")
@click.option("--channel", help="Only this channel's messages.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
@with_database
def list_(quarantined: bool, channel: str | None, limit: int) -> None:
    """List messages taken in, newest first (or only the quarantined ones).

    \b
    Example:
      eddymail mail list --quarantined --json
    """
    items = messages.list_messages(quarantined=quarantined, channel_name=channel, limit=limit)
    out = state().output
    out.emit(
        {"messages": items},
        lambda: out.table(
            ["ID", "Channel", "Status", "Size", "Error", "Taken"],
            [[m.id, m.channel or "-", m.status, m.size, m.error or "", m.created_at]
             for m in items],
            empty="No quarantined messages." if quarantined else "No messages yet.",
            wrap=("Error",),
        ),
    )


@mail_group.command("retry")
@click.argument("entry_id", type=int)
@json_option
@with_database
def retry(entry_id: int) -> None:
    """Parse a quarantined message again and file it if it can be filed now.

    Exits 1 (with the reason on stderr) while the message stays quarantined.

    \b
    Example:
      eddymail mail retry 17
    """
    max_bytes = int(state().runtime.config.get("fetch", "max_message_bytes"))
    result = messages.retry_quarantined(
        entry_id, IngestOptions.for_run(max_message_bytes=max_bytes))
    out = state().output
    if result.status == QUARANTINED:
        if out.json_mode:
            out.emit({"result": result})
        raise EddymailError(f"Message #{entry_id} is still quarantined: {result.error}")
    text = f"Message #{entry_id} filed: {result.status}" + (
        f" (ticket #{result.ticket_id})" if result.ticket_id else "")
    out.emit({"result": result}, lambda: out.line(text))


@mail_group.group("quarantine")
def quarantine_group() -> None:
    """Mail that could not be filed: who sent it, why it is held, its raw bytes.

    \b
    Examples:
      eddymail mail quarantine list
      eddymail mail quarantine export 17 held.eml
      eddymail mail retry 17
    """


@quarantine_group.command("list")
@click.option("--channel", help="Only this channel's messages.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
@with_database
def quarantine_list(channel: str | None, limit: int) -> None:
    """List quarantined messages: sender, subject, date and the reason, newest first.

    \b
    Example:
      eddymail mail quarantine list --json
    """
    items = quarantine.list_quarantine(channel_name=channel, limit=limit)
    out = state().output
    out.emit(
        {"messages": items},
        lambda: out.table(
            ["ID", "Channel", "From", "Subject", "Date", "Reason"],
            [[m.id, m.channel or "-", m.sender or "-", m.subject or "-",
              m.date or "-", m.reason] for m in items],
            empty="No quarantined messages.",
            wrap=("Subject", "Reason"),
        ),
    )


@quarantine_group.command("export")
@click.argument("entry_id", type=int)
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True))
@with_database
def quarantine_export(entry_id: int, file: Path) -> None:
    """Write a quarantined message's raw bytes to FILE (a new file; "-": stdout).

    The file is created readable by you only and never replaces another; stdout must not
    be a terminal (the bytes are hostile mail: pipe them into a file or a program).

    \b
    Examples:
      eddymail mail quarantine export 17 held.eml
      eddymail mail quarantine export 17 - | less
    """
    data = quarantine.quarantined_bytes(entry_id)
    if str(file) == "-":
        if sys.stdout.isatty():
            raise UsageError("Not writing raw mail to a terminal: give a file name, or "
                             "redirect stdout.")
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        descriptor = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                             | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise UsageError(f"{file} exists already; give a new file name.") from None
    except OSError as error:
        raise UsageError(f"Cannot write {file}: {error.strerror}.") from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    state().output.success(f"Message #{entry_id} ({len(data)} bytes) written to {file}.")


@mail_group.command("forget")
@click.argument("entry_id", type=int)
@json_option
@with_database
def forget(entry_id: int) -> None:
    """Drop a quarantined entry so the next fetch downloads the message again.

    For mail quarantined only because it was over the size limit, after raising the limit.

    \b
    Example:
      eddymail mail forget 17
    """
    messages.forget(entry_id)
    out = state().output
    out.emit({"forgotten": entry_id}, lambda: out.success(f"Message #{entry_id} forgotten."))
