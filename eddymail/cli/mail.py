"""``eddymail mail``: raw messages, the ledger and the quarantine."""

from __future__ import annotations

from pathlib import Path

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.services.ingest import rawmail as messages
from eddymail.services.ingest.pipeline import IngestOptions


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

    def render() -> None:
        document = parsed.to_json()
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

    out.emit(parsed.to_json(), render)


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

    \b
    Example:
      eddymail mail retry 17
    """
    max_bytes = int(state().runtime.config.get("fetch", "max_message_bytes"))
    result = messages.retry_quarantined(
        entry_id, IngestOptions.for_run(max_message_bytes=max_bytes))
    out = state().output
    text = (f"Message #{entry_id} is still quarantined: {result.error}" if result.error
            else f"Message #{entry_id} filed: {result.status}"
            + (f" (ticket #{result.ticket_id})" if result.ticket_id else ""))
    out.emit({"result": result}, lambda: out.line(text))


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
