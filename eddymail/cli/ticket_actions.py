"""``eddymail ticket reply|note|move|merge|attachments|attachment``.

Kept apart from listing and reading, so ``ticket list`` and ``ticket show`` do not import
the mail-sending machinery.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from eddymail.cli.app import agent_option, json_option, state, with_database
from eddymail.cli.texts import given_text
from eddymail.cli.tickets import DIRECTION_LABELS
from eddymail.errors import NotFoundError
from eddymail.services import snippets
from eddymail.services.outgoing import outbox
from eddymail.services.tickets import attachments, replies, workflow
from eddymail.services.tickets import merge as merging
from eddymail.services.tickets import queries as tickets
from eddymail.services.tickets.queries import TicketDetail

MARKER = "# ---- Write your reply above this line; everything below it is ignored. ----"


def _draft(detail: TicketDetail) -> str:
    lines = ["", "", MARKER, f"# Ticket #{detail.id}: {detail.subject}",
             f"# To: {detail.requester}"]
    if detail.participants:
        lines.append(f"# Cc: {', '.join(detail.participants)}")
    lines += ["# Markdown works: - lists, [links](https://example.com), **bold**."]
    names = snippets.names()
    if names:
        lines.append("# A line '/snippet NAME' becomes that canned reply: "
                     + ", ".join(names[:12]) + (" ..." if len(names) > 12 else ""))
    lines.append("#")
    for message in detail.messages[-5:]:
        if message.direction == "system":
            continue
        lines.append(f"# {DIRECTION_LABELS.get(message.direction, message.direction)} "
                     f"{message.from_['address'] or message.author}:")
        lines.extend(f"#   {line}" for line in message.new_text.splitlines())
        lines.append("#")
    return "\n".join(lines) + "\n"


def _read_text(message: str | None, file: str | None, what: str,
               detail: TicketDetail | None = None) -> str:
    """The text from -m, -F (or -F - for stdin), stdin when piped, else $EDITOR."""
    text = given_text(message, file)
    if text is not None:
        return text
    draft = _draft(detail) if detail else f"\n{MARKER}\n"
    while True:
        edited = click.edit(draft, extension=".txt") or ""
        text = edited.split(MARKER, 1)[0]
        if not text.strip():
            raise click.UsageError(f"The {what} is empty: nothing was done.")
        try:
            if what == "reply":  # its /snippet lines must name snippets that exist
                snippets.compose(text)
            return text
        except NotFoundError as error:  # back to the editor: the draft is not lost
            draft = edited.replace(MARKER, f"{MARKER}\n# Not sent: {error.message}", 1)


@click.command("reply")
@click.argument("ticket_id", type=int)
@click.option("-m", "--message", help="The reply text (otherwise $EDITOR opens).")
@click.option("-F", "--file", "file", help="Read the reply from a file ('-': stdin).")
@click.option("--to", "to", multiple=True, metavar="ADDRESS",
              help="Send to this address instead of the requester (repeatable; 'Name <address>' "
              "works too).")
@click.option("--cc", multiple=True, metavar="ADDRESS",
              help="Also send a copy to this address (repeatable); they join the ticket.")
@click.option("--bcc", multiple=True, metavar="ADDRESS",
              help="Send a blind copy to this address (repeatable).")
@click.option("--no-cc", is_flag=True, help="Leave the ticket's participants out of Cc.")
@click.option("--attach", "attachments", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Attach a file (repeatable; [reply] max_attachment_bytes in all).")
@click.option("--html/--no-html", "html", default=None,
              help="Add an HTML part rendered from the text's Markdown (default: [reply] html).")
@click.option("--close", is_flag=True, help="Close the ticket after replying.")
@click.option("--snippet", "snippet_names", multiple=True, metavar="NAME",
              help="Add this canned reply (repeatable; alone, it is the whole reply).")
@agent_option
@json_option
@with_database
def reply(ticket_id: int, message: str | None, file: str | None, to: tuple[str, ...],
          cc: tuple[str, ...], bcc: tuple[str, ...], no_cc: bool,
          attachments: tuple[Path, ...], html: bool | None, close: bool,
          snippet_names: tuple[str, ...]) -> None:
    """Answer by mail, from the mailbox of the ticket's department, signed by you.

    The reply goes To the requester and Cc the ticket's participants; --to, --cc, --bcc
    and --no-cc change that for this reply. Without -m or -F, $EDITOR opens on a draft
    that quotes the thread below a marker line; an empty draft aborts. The reply is queued
    and sent at once; if the server cannot be reached it stays in the outbox and the next
    fetch retries it. A line '/snippet NAME' in the text becomes that canned reply;
    --snippet NAME adds one after the text (with only --snippet, no editor opens).

    \b
    Examples:
      eddymail ticket reply 42
      eddymail ticket reply 42 -m "Fixed, please try again." --close
      eddymail ticket reply 42 --snippet refund-done --close
      eddymail ticket reply 42 -F answer.md --html --attach invoice.pdf --cc boss@customer.example
      eddymail --as anna ticket reply 42 --to accounts@customer.example --no-cc -m "..."
    """
    app = state()
    actor = app.actor()
    config = app.runtime.config
    tickets.require_ticket(ticket_id)
    for name in snippet_names:
        snippets.show_snippet(name)  # an unknown name fails before any text is asked for
    if snippet_names and message is None and file is None:
        text = ""
    else:
        detail = tickets.show_ticket(ticket_id) if message is None and file is None else None
        text = _read_text(message, file, "reply", detail)
    text = snippets.compose(text, snippet_names)
    options = replies.ReplyOptions(
        to=to, cc=cc, bcc=bcc, no_cc=no_cc, attachments=attachments, close=close,
        html=bool(config.get("reply", "html")) if html is None else html,
        max_attachment_bytes=int(config.get("reply", "max_attachment_bytes")))
    queued = replies.reply(ticket_id, text, actor=actor, options=options)
    results = outbox.send_due(ids=[queued.outbox_id],
                              timeout=float(config.get("network", "timeout")))
    sent = bool(results and results[0].sent)
    error = results[0].error if results and not results[0].sent else None
    out = app.output
    if not sent:
        out.warning(f"The reply is queued but not sent yet ({error or 'busy'}); "
                    "eddymail fetch or eddymail outbox retry will send it.")
    copies = "".join(f", {label} {', '.join(addresses)}" for label, addresses in
                     (("cc", queued.cc), ("bcc", queued.bcc)) if addresses)
    out.emit({"reply": queued, "sent": sent, "error": error},
             lambda: out.success(f"Reply to ticket #{ticket_id} {'sent' if sent else 'queued'} "
                                 f"from {queued.from_address} to {', '.join(queued.to)}"
                                 f"{copies}."))


@click.command("note")
@click.argument("ticket_id", type=int)
@click.option("-m", "--message", help="The note text (otherwise $EDITOR opens).")
@click.option("-F", "--file", "file", help="Read the note from a file ('-': stdin).")
@agent_option
@json_option
@with_database
def note(ticket_id: int, message: str | None, file: str | None) -> None:
    """Add an internal note to a ticket; it is never mailed to anyone.

    \b
    Example:
      eddymail ticket note 42 -m "Customer called, will send logs tomorrow."
    """
    tickets.require_ticket(ticket_id)
    text = _read_text(message, file, "note")
    change = workflow.note(ticket_id, text, actor=state().actor())
    out = state().output
    out.emit({"ticket": change}, lambda: out.success(f"Note added to ticket #{ticket_id}."))


@click.command("move")
@click.argument("ticket_id", type=int)
@click.argument("department")
@agent_option
@json_option
@with_database
def move(ticket_id: int, department: str) -> None:
    """Move a ticket to another department; its replies then go out from that mailbox.

    \b
    Example:
      eddymail ticket move 42 Accounting
    """
    change = workflow.move(ticket_id, department, actor=state().actor())
    out = state().output
    out.emit({"ticket": change},
             lambda: out.success(f"Ticket #{ticket_id} is now in {change.department}."))


@click.command("attachments")
@click.argument("ticket_id", type=int)
@json_option
@with_database
def attachments_(ticket_id: int) -> None:
    """List a ticket's attachments.

    \b
    Example:
      eddymail ticket attachments 42
    """
    items = attachments.list_attachments(ticket_id)
    out = state().output
    out.emit({"attachments": items}, lambda: out.table(
        ["ID", "Extension", "File name", "Type", "Size"],
        [[a.id, a.extension or "-", a.shown_name, a.content_type, a.size] for a in items],
        empty="No attachments."))


@click.group("attachment")
def attachment_group() -> None:
    """One attachment: save it to disk.

    \b
    Example:
      eddymail ticket attachment save 7 --to ~/Downloads
    """


@attachment_group.command("save")
@click.argument("attachment_id", type=int)
@click.option("--to", "folder", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Folder to save into.")
@json_option
@with_database
def save(attachment_id: int, folder: Path) -> None:
    """Save an attachment under a safe name; an existing file is never overwritten.

    \b
    Example:
      eddymail ticket attachment save 7 --to ~/Downloads
    """
    saved = attachments.save_attachment(attachment_id, folder)
    out = state().output
    out.emit({"saved": saved}, lambda: out.success(f"Saved {saved.path} ({saved.size} bytes)."))


@click.command("merge")
@click.argument("ticket_id", type=int)
@click.argument("others", nargs=-1, type=int, required=True, metavar="OTHER...")
@click.option("-y", "--yes", is_flag=True, help="Merge without asking.")
@agent_option
@json_option
@with_database
def merge(ticket_id: int, others: tuple[int, ...], yes: bool) -> None:
    """Merge other tickets into TICKET_ID: their messages, people, tags and history.

    The others are closed and point at TICKET_ID; mail that still carries their tag
    ([#OTHER]) lands in TICKET_ID from then on.

    \b
    Examples:
      eddymail ticket merge 42 57
      eddymail ticket merge 42 57 58 --yes
    """
    if not yes:
        question = (f"Merge ticket(s) #{', #'.join(map(str, others))} into #{ticket_id}")
        if not sys.stdin.isatty():
            raise click.UsageError(f"{question}? Add --yes to go ahead.")
        click.confirm(question + "?", abort=True, err=True)
    result = merging.merge(ticket_id, others, actor=state().actor())
    out = state().output
    out.emit({"merge": result}, lambda: out.success(
        f"Merged #{', #'.join(map(str, result.merged))} into #{result.ticket_id} "
        f"({result.messages_moved} message(s) moved)."))
