"""The command-line interface: argument parsing and rendering only (design.md §2)."""

from __future__ import annotations

from eddymail.cli.app import cli

cli.lazy_commands.update({
    "init": "eddymail.cli.init:init_command",
    "db": "eddymail.cli.db:db_group",
    "department": "eddymail.cli.departments:department_group",
    "agent": "eddymail.cli.agents:agent_group",
    "channel": "eddymail.cli.channels:channel_group",
    "fetch": "eddymail.cli.fetch:fetch_command",
    "watch": "eddymail.cli.watch:watch_command",
    "ingest": "eddymail.cli.ingest:ingest_command",
    "ticket": "eddymail.cli.tickets:ticket_group",
    "template": "eddymail.cli.templates:template_group",
    "user": "eddymail.cli.users:user_group",
    "mail": "eddymail.cli.mail:mail_group",
    "outbox": "eddymail.cli.outbox:outbox_group",
    "settings": "eddymail.cli.settings:settings_group",
    "log": "eddymail.cli.log:log_command",
})


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="eddymail")


__all__ = ["cli", "main"]
