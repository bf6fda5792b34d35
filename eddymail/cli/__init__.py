"""The command-line interface: argument parsing and rendering only (design.md §2)."""

from __future__ import annotations

from eddymail.cli.app import cli
from eddymail.cli.channels import channel_group
from eddymail.cli.departments import department_group
from eddymail.cli.fetch import fetch_command
from eddymail.cli.ingest import ingest_command
from eddymail.cli.init import init_command
from eddymail.cli.log import log_command
from eddymail.cli.mail import mail_group
from eddymail.cli.outbox import outbox_group
from eddymail.cli.settings import settings_group
from eddymail.cli.templates import template_group
from eddymail.cli.tickets import ticket_group
from eddymail.cli.users import user_group

for command in (
    init_command, department_group, channel_group, fetch_command, ingest_command, ticket_group,
    mail_group, outbox_group, user_group, settings_group, log_command, template_group,
):
    cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="eddymail")


__all__ = ["cli", "main"]
