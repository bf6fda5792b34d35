"""``eddymail ticket``: reading tickets."""

from __future__ import annotations

import click

from eddymail.cli.app import LazyGroup, agent_option, json_option, state, with_database
from eddymail.cli.layout import short_age
from eddymail.cli.plaintext import Styled
from eddymail.safetext import for_terminal
from eddymail.services.tickets import queries as tickets
from eddymail.services.tickets.queries import (
    PRIORITIES,
    STATUS_FILTERS,
    ThreadMessage,
    TicketDetail,
    TicketSummary,
)


@click.group("ticket", cls=LazyGroup, lazy_commands={
    **{name: f"eddymail.cli.ticket_actions:{attribute}" for name, attribute in (
        ("reply", "reply"), ("note", "note"), ("move", "move"), ("merge", "merge"),
        ("attachments", "attachments_"), ("attachment", "attachment_group"),
    )},
    **{name: f"eddymail.cli.ticket_bulk:{name}" for name in (
        "close", "reopen", "assign", "priority", "tag")},
    "export": "eddymail.cli.ticket_export:export",
})
def ticket_group() -> None:
    """Tickets: list, read and answer customer requests.

    \b
    Examples:
      eddymail ticket list
      eddymail ticket show 42
    """


@ticket_group.command("list")
@click.option("--status", type=click.Choice(STATUS_FILTERS), default="active", show_default=True,
              help="active = open and pending.")
@click.option("--department", help="Only this department's tickets.")
@click.option("--requester", help="Only tickets of this customer address.")
@click.option("--assignee", metavar="AGENT", help="Only tickets assigned to this agent.")
@click.option("--mine", is_flag=True, help="Only tickets assigned to me (see --as).")
@click.option("--unassigned", is_flag=True, help="Only tickets nobody has.")
@click.option("--search", metavar="WORDS",
              help="Only tickets with all these words (subject, people, any message), "
                   'best match first; "a phrase", prefix*.')
@click.option("--priority", type=click.Choice(PRIORITIES), help="Only tickets of this priority.")
@click.option("--tag", "tags", multiple=True, metavar="TAG",
              help="Only tickets with this tag (repeatable: with all of them).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0, help="Skip this many (paging).")
@agent_option
@json_option
@with_database
def list_(status: str, department: str | None, requester: str | None, assignee: str | None,
          mine: bool, unassigned: bool, search: str | None, priority: str | None,
          tags: tuple[str, ...], limit: int, offset: int) -> None:
    """List tickets, newest activity first (with --search: best match first).

    A "*" after the number marks tickets whose last message is from the customer (waiting
    for us); "!" after the status a high priority, "!!" an urgent one. Age is the time
    since the last activity. Search ignores case (and ё/е) in every language.

    \b
    Examples:
      eddymail ticket list --mine
      eddymail ticket list --unassigned --department Support --limit 20
      eddymail ticket list --priority urgent --tag vip
      eddymail ticket list --status all --search invoice --json
    """
    if sum((assignee is not None, mine, unassigned)) > 1:
        raise click.UsageError("Give one of --assignee, --mine and --unassigned.")
    if mine:
        actor = state().actor()
        if actor.handle is None:
            raise click.UsageError("--mine needs an agent: see eddymail agent add.")
        assignee = actor.handle
    elif unassigned:
        assignee = tickets.UNASSIGNED
    items = tickets.list_tickets(status=status, department=department, requester=requester,
                                 assignee=assignee, search=search, priority=priority,
                                 tags=tags, limit=limit, offset=offset)
    out = state().output
    if items and items[0].match is not None and items[0].match.score is None:
        out.info("Too many messages match to rank them: newest first (more words narrow it).")
    out.emit({"tickets": items}, lambda: render_list(items))


WIDE = 120  # from this many columns on, the list also shows department and assignee


def render_list(items: list[TicketSummary]) -> None:
    """The ``ticket list`` table: narrow fixed columns, the rest for subject and requester."""
    out = state().output
    wide = out.width >= WIDE
    columns = ["#", "Status", "Age", "Subject", "Requester"]
    if wide:
        columns += ["Department", "Assignee"]
    rows = []
    for ticket in items:
        waiting = ticket.awaiting_reply and ticket.status != "closed"
        status = ("merged" if ticket.merged_into
                  else ticket.status + PRIORITY_MARKS.get(ticket.priority, ""))
        row: list[object] = [
            f"{ticket.id}*" if waiting else ticket.id, status,
            short_age(ticket.last_activity_at),
            _subject_cell(ticket), ticket.requester or "(unidentified sender)"]
        if wide:
            row += [ticket.department, ticket.assignee or "-"]
        rows.append(row)
    out.table(columns, rows, empty="No tickets.",
              grow={"Subject": 3, "Requester": 2, "Department": 1, "Assignee": 1})


PRIORITY_MARKS = {"low": "", "normal": "", "high": " !", "urgent": " !!"}


def _subject_cell(ticket: TicketSummary) -> object:
    """The subject (and its tags, dim), under it the search snippet with the words in bold."""
    pieces = [(ticket.subject or "(no subject)", "")]
    if ticket.tags:
        pieces.append(("  " + " ".join(f"#{tag}" for tag in ticket.tags), "dim"))
    match = ticket.match
    if match is None:
        return Styled(tuple(pieces))
    pieces.append(("\n", ""))
    position = 0
    for start, end in match.highlights:
        pieces += [(match.snippet[position:start], "dim"), (match.snippet[start:end], "bold")]
        position = end
    pieces.append((match.snippet[position:], "dim"))
    return Styled(tuple(piece for piece in pieces if piece[0]))


@ticket_group.command("show")
@click.argument("ticket_id", type=int)
@click.option("--full", is_flag=True, help="Also show the quoted history inside e-mail replies.")
@json_option
@with_database
def show(ticket_id: int, full: bool) -> None:
    """Show a ticket and its whole thread, oldest message first.

    Quoted history inside customers' e-mail replies is folded away; --full shows it.
    A ticket longer than the screen opens in $PAGER (default: less -R); piped output
    is never paged.

    \b
    Examples:
      eddymail ticket show 42
      eddymail ticket show 42 --full --json
    """
    detail = tickets.show_ticket(ticket_id)
    out = state().output

    def render() -> None:
        with out.paged():
            render_ticket(detail, full=full)

    out.emit({"ticket": detail}, render)


DIRECTION_LABELS = {"in": "from customer", "out": "reply", "note": "internal note",
                    "system": "system"}


def render_ticket(detail: TicketDetail, *, full: bool = False) -> None:
    """The ``ticket show`` view for people."""
    out = state().output
    pairs = [
        ("Subject", detail.subject or "(no subject)"),
        ("Status", detail.status if detail.merged_into is None
         else f"{detail.status}, merged into #{detail.merged_into}"),
        ("Priority", detail.priority),
        ("Tags", " ".join(detail.tags) or "-"),
        ("Department", detail.department),
        ("Requester", f"{detail.requester} ({detail.requester_name})"
         if detail.requester_name else detail.requester or "(unidentified sender)"),
        ("Participants", ", ".join(detail.participants) or "-"),
        ("Assignee", _agent(detail.assignee, detail.assignee_name)),
        ("Created", detail.created_at),
    ]
    if detail.cc_not_added:
        pairs.append(("Cc, not added", ", ".join(detail.cc_not_added)
                      + " (the sender was not verified; add them with ticket reply --cc)"))
    if detail.merged_from:
        pairs.append(("Merged in", ", ".join(f"#{number}" for number in detail.merged_from)))
    if detail.carried_tag:
        pairs.append(("Carried tag", f"#{detail.carried_tag} (not joined: the sender takes no "
                                     "part in that ticket)"))
    out.fields(pairs, title=f"Ticket #{detail.id}")
    out.escaped_lines([line for message in detail.messages
                       for line in _message_lines(message, full=full)])
    if detail.history:
        out.line("")
        out.line("History", style="bold")
        for entry in detail.history:
            out.line(f"  {entry.at:%Y-%m-%d %H:%M} UTC  {entry.actor}: {describe_event(entry)}")


def _message_lines(message: ThreadMessage, *, full: bool) -> list[tuple[str, str]]:
    """One message of the thread as (text, style) lines, every part that came from mail or
    from a person escaped (the rest is our own printable text)."""
    label = DIRECTION_LABELS.get(message.direction, message.direction)
    if message.automatic == "bounce":
        label = "delivery failure (bounce)"
    elif message.automatic:
        label += f", {message.automatic.replace('_', ' ')}"
    # The real address first: a display name is whatever the sender chose to write.
    sender = message.from_["address"] or message.author
    if message.from_["name"]:
        sender = f"{sender} ({message.from_['name']})"
    lines = [("", ""), (f"── {for_terminal(f'{label}: {sender}')} · "
                        f"{message.created_at:%Y-%m-%d %H:%M} UTC", "bold")]
    if message.auth_status == "fail":
        lines.append(("   Sender verification FAILED: the From address may be forged "
                      "(kept, but it registered nobody and joined no ticket)", "red"))
    elif message.auth_status == "missing":
        lines.append(("   Sender NOT VERIFIED: the mail provider added no Authentication-"
                      "Results (kept, but it registered nobody and joined no ticket)", "red"))
    for name, entries in (("Cc", message.cc), ("Bcc", message.bcc)):
        if entries:
            shown = for_terminal(", ".join(entry["address"] for entry in entries))
            lines.append((f"   {name}: {shown}", "dim"))
    if message.message_id_reused:
        lines.append(("   Its Message-ID came before with a different message (stored "
                      "anyway; threaded by its other headers)", "yellow"))
    if message.reply_to_differs:
        shown = for_terminal(", ".join(entry["address"] for entry in message.reply_to))
        lines.append((f"   Reply-To differs from From: {shown} (replies go to the requester)",
                      "yellow"))
    lines.append((for_terminal((message.body_text if full else message.new_text).rstrip()
                               or "(empty)"), ""))
    if message.quoted_lines and not full:
        lines.append((f"   … {message.quoted_lines} quoted line(s) folded (--full shows them)",
                      "dim"))
    for attachment in message.attachments:
        # The real extension on its own: padding cannot push ".exe" off the line.
        about = for_terminal(f"{attachment.extension or 'no extension'}: "
                             f"{attachment.shown_name} ({attachment.content_type}, ")
        lines.append((f"  [attachment {attachment.id}] {about}{attachment.size} bytes)", "dim"))
    return lines


def _agent(handle: str | None, name: str) -> str:
    if handle is None:
        return "-"
    return f"{name} ({handle})" if name and name != handle else handle


def describe_event(entry: tickets.HistoryEntry) -> str:
    """One history entry in words: "assigned it to bob", "replied to a@x, cc b@y"."""
    detail = entry.detail
    if entry.action == "reply":
        text = "replied to " + ", ".join(detail.get("to", []))
        for key in ("cc", "bcc"):
            if detail.get(key):
                text += f", {key} " + ", ".join(detail[key])
        if detail.get("attachments"):
            text += f" ({len(detail['attachments'])} file(s))"
        return text
    if entry.action in ("assign", "unassign"):
        reason = f" ({detail['reason']})" if detail.get("reason") else ""
        return (f"assigned it to {detail.get('to')}" if entry.action == "assign"
                else f"unassigned {detail.get('from') or 'it'}") + reason
    if entry.action == "priority":
        return f"set the priority from {detail.get('from')} to {detail.get('to')}"
    if entry.action == "tag":
        changes = [f"+{name}" for name in detail.get("added", [])]
        changes += [f"-{name}" for name in detail.get("removed", [])]
        return "tagged it " + " ".join(changes)
    if entry.action == "merge":
        return f"merged #{detail.get('from')} into it ({detail.get('messages')} message(s))"
    if entry.action == "merged":
        return f"merged it into #{detail.get('into')}"
    if entry.action == "move":
        return f"moved it from {detail.get('from')} to {detail.get('to')}"
    if entry.action == "status":
        return f"set the status to {detail.get('to')}"
    return {"note": "added a note", "close": "closed it",
            "reopen": "reopened it"}.get(entry.action, entry.action)
