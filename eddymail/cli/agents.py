"""``eddymail agent``: the staff who work tickets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from eddymail.cli.app import agent_option, json_option, state, with_database
from eddymail.services import agents
from eddymail.services.agents import DELIVERIES, AgentChanges, AgentInfo


@click.group("agent")
def agent_group() -> None:
    """Agents: the people who answer tickets, get assigned and are notified.

    Who you are comes from --as HANDLE, $EDDYMAIL_AGENT or [agent] name in
    eddymail.toml; replies are signed with that agent's name and signature.

    \b
    Examples:
      eddymail agent add anna --name "Anna Petrova" --email anna@example.com --department Support
      eddymail agent edit anna --delivery digest --digest-every 1h
      eddymail agent list
    """


def _profile_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """The options ``agent add`` and ``agent edit`` share."""
    options = [
        click.option("--name", help="Full name, shown on replies and in the history."),
        click.option("--email", help="Address for staff notifications ('' for none)."),
        click.option("--signature", help="Signature under replies (\\n for line breaks)."),
        click.option("--signature-file", type=click.Path(dir_okay=False, path_type=Path),
                     help="Read the signature from a file."),
        click.option("--department", "departments", multiple=True,
                     help="A department the agent works (repeatable; on edit: the new list)."),
        click.option("--notify-new/--no-notify-new", "notify_new_tickets", default=None,
                     help="Hear of new tickets in the agent's departments."),
        click.option("--notify-replies/--no-notify-replies", "notify_replies", default=None,
                     help="Hear when a customer answers (own tickets, or unassigned ones)."),
        click.option("--notify-assigned/--no-notify-assigned", "notify_assigned", default=None,
                     help="Hear when someone assigns a ticket to the agent."),
        click.option("--delivery", type=click.Choice(DELIVERIES),
                     help="immediate: a mail each time; digest: one summary per interval."),
        click.option("--digest-every", help="Digest interval: 90 (minutes), 30m, 2h, 1d."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _changes(values: dict[str, Any]) -> AgentChanges:
    signature = values.get("signature")
    if values.get("signature_file") is not None:
        if signature is not None:
            raise click.UsageError("Give --signature or --signature-file, not both.")
        try:
            signature = values["signature_file"].read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise click.UsageError(f"Cannot read {values['signature_file']}: {error}") from None
    elif signature is not None:
        signature = signature.replace("\\n", "\n")
    departments = tuple(values.get("departments") or ())
    every = values.get("digest_every")
    return AgentChanges(
        name=values.get("name"), email=values.get("email"), signature=signature,
        departments=departments or None,
        add_departments=tuple(values.get("add_departments") or ()),
        remove_departments=tuple(values.get("remove_departments") or ()),
        notify_new_tickets=values.get("notify_new_tickets"),
        notify_replies=values.get("notify_replies"),
        notify_assigned=values.get("notify_assigned"),
        delivery=values.get("delivery"),
        digest_minutes=agents.parse_minutes(every) if every else None,
    )


def _notify_summary(info: AgentInfo) -> str:
    kinds = [label for label, on in (("new tickets", info.notify_new_tickets),
                                     ("customer replies", info.notify_replies),
                                     ("assignments", info.notify_assigned)) if on]
    if not info.email or not kinds:
        return "none"
    how = "at once" if info.delivery == "immediate" else \
        f"digest every {_minutes(info.digest_minutes)}"
    return f"{', '.join(kinds)} ({how})"


def _minutes(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def _render(info: AgentInfo) -> None:
    state().output.fields([
        ("Handle", info.handle),
        ("Name", info.name),
        ("E-mail", info.email or "(none: no notifications)"),
        ("Departments", ", ".join(info.departments) or "(none)"),
        ("Notifications", _notify_summary(info)),
        ("Open tickets", info.open_tickets),
        ("Signature", info.signature or "(none: name and department)"),
        ("Added", info.created_at),
    ], title=f"Agent {info.handle}")


@agent_group.command("add")
@click.argument("handle")
@_profile_options
@json_option
@with_database
def add(handle: str, **values: Any) -> None:
    """Add an agent. Without --department: the only department, if there is just one.

    \b
    Example:
      eddymail agent add anna --name "Anna Petrova" --email anna@example.com \\
          --department Support --signature "Anna Petrova\\nSupport engineer"
    """
    info = agents.add_agent(handle, _changes(values))
    out = state().output
    out.emit({"agent": info}, lambda: out.success(
        f"Agent {info.handle} ({info.name}) added"
        + (f" to {', '.join(info.departments)}." if info.departments else
           "; no department yet: eddymail agent edit "
           f"{info.handle} --department NAME.")))


@agent_group.command("list")
@click.option("--department", help="Only this department's agents.")
@json_option
@with_database
def list_(department: str | None) -> None:
    """List agents.

    \b
    Example:
      eddymail agent list --department Support
    """
    items = agents.list_agents(department)
    out = state().output
    out.emit({"agents": items}, lambda: out.table(
        ["Handle", "Name", "E-mail", "Departments", "Open", "Notifications"],
        [[a.handle, a.name, a.email or "-", ", ".join(a.departments) or "-", a.open_tickets,
          _notify_summary(a)] for a in items],
        empty="No agents yet: eddymail agent add HANDLE --name NAME --email ADDRESS"))


@agent_group.command("show")
@click.argument("agent")
@json_option
@with_database
def show(agent: str) -> None:
    """Show one agent.

    \b
    Example:
      eddymail agent show anna
    """
    info = agents.show_agent(agent)
    state().output.emit({"agent": info}, lambda: _render(info))


@agent_group.command("edit")
@click.argument("agent")
@click.option("--handle", "new_handle", help="A new handle.")
@_profile_options
@click.option("--add-department", "add_departments", multiple=True,
              help="Also work this department (repeatable).")
@click.option("--remove-department", "remove_departments", multiple=True,
              help="No longer work this department (repeatable).")
@json_option
@with_database
def edit(agent: str, new_handle: str | None, **values: Any) -> None:
    """Change an agent's details (only the options given change).

    \b
    Examples:
      eddymail agent edit anna --email anna@example.com --add-department Sales
      eddymail agent edit anna --no-notify-new --delivery digest --digest-every 2h
    """
    changes = _changes(values)
    if new_handle is None and changes == AgentChanges():
        raise click.UsageError("Nothing to change: give at least one option.")
    info = agents.edit_agent(agent, changes, new_handle=new_handle)
    out = state().output
    out.emit({"agent": info}, lambda: out.success(f"Agent {info.handle} updated."))


@agent_group.command("remove")
@click.argument("agent")
@agent_option
@json_option
@with_database
def remove(agent: str) -> None:
    """Remove an agent; their tickets become unassigned (their history stays).

    \b
    Example:
      eddymail agent remove anna
    """
    handle, tickets = agents.remove_agent(agent, actor=state().actor())
    out = state().output
    out.emit({"removed": handle, "unassigned_tickets": tickets}, lambda: out.success(
        f"Agent {handle} removed" + (f"; {len(tickets)} ticket(s) are unassigned now."
                                     if tickets else ".")))
