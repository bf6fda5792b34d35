"""``eddymail department``: the teams that own tickets."""

from __future__ import annotations

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.services import departments
from eddymail.services.departments import DepartmentInfo


@click.group("department")
def department_group() -> None:
    """Departments: teams (Support, Accounting) that own tickets.

    \b
    Examples:
      eddymail department add Support
      eddymail department list --json
    """


def _render(info: DepartmentInfo) -> None:
    state().output.fields(
        [
            ("Name", info.name),
            (
                "Outgoing channel",
                f"{info.outgoing_channel} <{info.outgoing_address}>"
                if info.outgoing_channel
                else "(none: replies cannot be sent yet)",
            ),
            ("Channels", ", ".join(info.channels) or "(none)"),
            ("Open tickets", info.open_tickets),
            ("All tickets", info.tickets),
            ("Created", info.created_at),
        ],
        title=f"Department {info.name}",
    )


@department_group.command("add")
@click.argument("name")
@json_option
@with_database
def add(name: str) -> None:
    """Create a department.

    \b
    Example:
      eddymail department add "Accounting"
    """
    info = departments.add_department(name)
    out = state().output
    out.emit({"department": info}, lambda: out.success(f"Department {info.name} added."))


@department_group.command("list")
@json_option
@with_database
def list_() -> None:
    """List departments with their outgoing channel and ticket counts.

    \b
    Example:
      eddymail department list
    """
    items = departments.list_departments()
    out = state().output
    out.emit(
        {"departments": items},
        lambda: out.table(
            ["Name", "Outgoing channel", "Channels", "Open", "Tickets"],
            [
                [
                    d.name,
                    d.outgoing_channel or "-",
                    ", ".join(d.channels) or "-",
                    d.open_tickets,
                    d.tickets,
                ]
                for d in items
            ],
            empty="No departments yet: eddymail department add Support",
        ),
    )


@department_group.command("show")
@click.argument("name")
@json_option
@with_database
def show(name: str) -> None:
    """Show one department.

    \b
    Example:
      eddymail department show Support
    """
    info = departments.show_department(name)
    state().output.emit({"department": info}, lambda: _render(info))


@department_group.command("edit")
@click.argument("name")
@click.option("--name", "new_name", help="A new name for the department.")
@click.option("--outgoing-channel", help="Channel replies are sent from ('' to clear).")
@json_option
@with_database
def edit(name: str, new_name: str | None, outgoing_channel: str | None) -> None:
    """Rename a department or choose the mailbox its replies are sent from.

    \b
    Example:
      eddymail department edit Support --outgoing-channel support
    """
    if new_name is None and outgoing_channel is None:
        raise click.UsageError("Nothing to change: give --name and/or --outgoing-channel.")
    info = departments.edit_department(name, new_name=new_name, outgoing_channel=outgoing_channel)
    out = state().output
    out.emit({"department": info}, lambda: out.success(f"Department {info.name} updated."))


@department_group.command("remove")
@click.argument("name")
@json_option
@with_database
def remove(name: str) -> None:
    """Delete a department that has no channels and no tickets.

    \b
    Example:
      eddymail department remove Accounting
    """
    departments.remove_department(name)
    out = state().output
    out.emit({"removed": name}, lambda: out.success(f"Department {name} removed."))
