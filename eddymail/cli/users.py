"""``eddymail user``: customers known by address."""

from __future__ import annotations

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.services.tickets import users


@click.group("user")
def user_group() -> None:
    """Customers: people eddymail registered from their mail.

    \b
    Examples:
      eddymail user list --search example.com
      eddymail user show anna@example.com
    """


@user_group.command("list")
@click.option("--search", help="Part of an address or name.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@json_option
@with_database
def list_(search: str | None, limit: int) -> None:
    """List customers.

    \b
    Example:
      eddymail user list --search anna
    """
    items = users.list_users(search=search, limit=limit)
    out = state().output
    out.emit({"users": items}, lambda: out.table(
        ["Address", "Name", "Tickets", "Registered"],
        [[u.email, u.name, u.tickets, u.created_at] for u in items], empty="No users yet."))


@user_group.command("show")
@click.argument("email")
@json_option
@with_database
def show(email: str) -> None:
    """Show one customer.

    \b
    Example:
      eddymail user show anna@example.com
    """
    info = users.show_user(email)
    out = state().output
    out.emit({"user": info}, lambda: out.fields(
        [("Address", info.email), ("Name", info.name or "-"), ("Tickets", info.tickets),
         ("Registered", info.created_at), ("Registered by", info.registered_by)]))
