"""``eddymail ticket close|reopen|assign|priority|tag``: on one ticket, several, or a search.

``ticket close 42`` changes one ticket, as it always did. Several numbers, or ``--search``,
make it a bulk change: the count is shown and confirmed first (``--yes`` for scripts, which
are refused without it rather than left waiting for an answer).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from eddymail.cli.app import agent_option, json_option, state, with_database
from eddymail.errors import EXIT_FAILED
from eddymail.services.outgoing import outbox
from eddymail.services.tickets import bulk, labels, workflow
from eddymail.services.tickets.queries import STATUS_FILTERS


def _selection(function: Callable[..., Any]) -> Callable[..., Any]:
    """``--search``, ``--status`` and ``--yes``: which tickets, and no question asked."""
    for option in reversed([
        click.option("--search", metavar="WORDS",
                     help="Also every ticket this search finds (as ticket list --search)."),
        click.option("--status", "status_filter", type=click.Choice(STATUS_FILTERS),
                     default="active",
                     show_default=True, help="With --search: only tickets in this status."),
        click.option("-y", "--yes", is_flag=True,
                     help="Change several tickets without asking (needed in scripts)."),
    ]):
        function = option(function)
    return function


def _numbers(words: tuple[str, ...] | list[str]) -> list[int]:
    numbers = []
    for word in words:
        text = word.removeprefix("#")
        if not text.isdigit():
            raise click.UsageError(f"'{word}' is not a ticket number.")
        numbers.append(int(text))
    return numbers


def _run(verb: str, ids: list[int], search: str | None, status: str, yes: bool,
         change: Callable[[int], Any], said: Callable[[Any], str]) -> list[bulk.BulkOutcome]:
    """Select, confirm, change, report. One plain number keeps the one-ticket behaviour."""
    out = state().output
    if len(ids) == 1 and search is None:
        result = change(ids[0])  # errors are the command's own, with their exit code
        out.emit({"ticket": result}, lambda: out.success(said(result)))
        return [bulk.BulkOutcome(ids[0], True, result)]
    chosen = bulk.select_tickets(ids, search=search, status=status)
    if not chosen:
        out.emit({"tickets": [], "count": 0, "changed": 0, "failed": 0},
                 lambda: out.line("No tickets match: nothing changed.", style="dim"))
        return []
    if not yes:
        question = f"{verb.capitalize()} {len(chosen)} ticket(s): #" + ", #".join(
            str(ticket_id) for ticket_id in chosen[:20]) + (" ..." if len(chosen) > 20 else "")
        if not sys.stdin.isatty():
            raise click.UsageError(f"{question}? Add --yes to go ahead.")
        click.confirm(question + "?", abort=True, err=True)
    outcomes = bulk.apply(chosen, change)
    failed = [outcome for outcome in outcomes if not outcome.ok]
    changed = [o for o in outcomes if o.ok and getattr(o.result, "changed", True)]

    def render() -> None:
        for outcome in outcomes:
            if outcome.ok:
                out.line(said(outcome.result))
            else:
                out.error(f"#{outcome.ticket_id}: {outcome.error}")
        out.success(f"{len(outcomes) - len(failed)} of {len(outcomes)} ticket(s) done"
                    + (f", {len(failed)} failed." if failed else "."))

    out.emit({"tickets": outcomes, "count": len(outcomes), "changed": len(changed),
              "failed": len(failed)}, render)
    if failed:
        click.get_current_context().exit(EXIT_FAILED)
    return outcomes


def _status_command(name: str, status: str, summary: str) -> click.Command:
    @click.command(name, help=f"{summary}\n\nSeveral numbers, or --search, change every one "
                              f"of them after a confirmation.\n\n\b\nExamples:\n"
                              f"  eddymail ticket {name} 42\n"
                              f"  eddymail ticket {name} 41 42 43 --yes\n"
                              f"  eddymail ticket {name} --search \"casino bonus\"")
    @click.argument("tickets", nargs=-1, metavar="[TICKET]...")
    @_selection
    @agent_option
    @json_option
    @with_database
    def command(tickets: tuple[str, ...], search: str | None, status_filter: str,
                yes: bool) -> None:
        actor = state().actor()
        _run(name, _numbers(tickets), search, status_filter, yes,
             lambda ticket_id: workflow.set_status(ticket_id, status, actor=actor),
             lambda change: f"Ticket #{change.ticket_id} is {change.status}.")

    return command


close = _status_command("close", "closed", "Close tickets (a customer reply reopens one).")
reopen = _status_command("reopen", "open", "Reopen closed tickets.")


@click.command("assign")
@click.argument("words", nargs=-1, metavar="[TICKET]... [AGENT]")
@click.option("--me", is_flag=True, help="Assign them to myself (see --as).")
@click.option("--unassign", is_flag=True, help="Take them back to the team.")
@_selection
@agent_option
@json_option
@with_database
def assign(words: tuple[str, ...], me: bool, unassign: bool, search: str | None,
           status_filter: str, yes: bool) -> None:
    """Assign tickets to an agent (by handle or name, the last word); they are notified.

    \b
    Examples:
      eddymail ticket assign 42 anna
      eddymail --as bob ticket assign 42 --me
      eddymail ticket assign 42 --unassign
      eddymail ticket assign 41 42 43 anna --yes
      eddymail ticket assign --search "invoice" --status open anna
    """
    if me and unassign:
        raise click.UsageError("Give an AGENT, --me or --unassign.")
    agent: str | None = None
    if not (me or unassign):
        if not words:
            raise click.UsageError("Give an AGENT, --me or --unassign.")
        *words_left, agent = words
        words = tuple(words_left)
    actor = state().actor()
    if me:
        if actor.handle is None:
            raise click.UsageError("--me needs an agent: see eddymail agent add.")
        agent = actor.handle
    outcomes = _run("assign", _numbers(words), search, status_filter, yes,
                    lambda ticket_id: workflow.assign(ticket_id, agent, actor=actor),
                    lambda change: f"Ticket #{change.ticket_id} assigned to {change.assignee}."
                    if change.assignee else f"Ticket #{change.ticket_id} unassigned.")
    queued = [item for outcome in outcomes if outcome.ok
              for item in outcome.result.notifications]
    if queued:  # the new assignee hears of it now, not at the next fetch
        outbox.send_due(ids=queued, timeout=float(state().runtime.config.get("network",
                                                                             "timeout")))


@click.command("priority")
@click.argument("words", nargs=-1, required=True,
                metavar=f"[TICKET]... {'|'.join(labels.PRIORITIES).upper()}")
@_selection
@agent_option
@json_option
@with_database
def priority(words: tuple[str, ...], search: str | None, status_filter: str,
             yes: bool) -> None:
    """Set the priority of tickets (the last word): low, normal, high or urgent.

    \b
    Examples:
      eddymail ticket priority 42 urgent
      eddymail ticket priority --search "server down" high --yes
    """
    *numbers, level = words
    level = labels.priority_name(level)
    actor = state().actor()
    _run("set the priority of", _numbers(numbers), search, status_filter, yes,
         lambda ticket_id: labels.set_priority(ticket_id, level, actor=actor),
         lambda change: f"Ticket #{change.ticket_id}: priority {change.priority}.")


@click.command("tag")
@click.argument("tickets", nargs=-1, metavar="[TICKET]...")
@click.option("-a", "--add", "add", multiple=True, metavar="TAG", help="Add this tag.")
@click.option("-r", "--remove", "remove", multiple=True, metavar="TAG",
              help="Remove this tag.")
@_selection
@agent_option
@json_option
@with_database
def tag(tickets: tuple[str, ...], add: tuple[str, ...], remove: tuple[str, ...],
        search: str | None, status_filter: str, yes: bool) -> None:
    """Add or remove tags of tickets (tags are one lower-case word each).

    \b
    Examples:
      eddymail ticket tag 42 --add billing --add vip
      eddymail ticket tag 42 --remove vip
      eddymail ticket tag --search "casino bonus" --add spam --yes
    """
    if not add and not remove:
        raise click.UsageError("Say which tags to --add or --remove.")
    for name in (*add, *remove):
        labels.tag_name(name)  # refused before any ticket is asked about
    actor = state().actor()

    def said(change: labels.LabelChange) -> str:
        return f"Ticket #{change.ticket_id}: tags {', '.join(change.tags) or '(none)'}."

    _run("tag", _numbers(tickets), search, status_filter, yes,
         lambda ticket_id: labels.change_tags(ticket_id, add=add, remove=remove, actor=actor),
         said)
