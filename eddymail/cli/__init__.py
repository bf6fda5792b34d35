"""The command-line interface: argument parsing and rendering only (design.md §2)."""

from __future__ import annotations

import gc

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
    "search": "eddymail.cli.search:search_group",
    "snippet": "eddymail.cli.snippets:snippet_group",
})

# The first paragraph of each command's help, so `eddymail --help` lists the commands without
# importing them all (tests/test_help.py keeps these equal to the commands' own help).
cli.lazy_summaries.update({
    "init": "Create the database, or upgrade it to this version's schema.",
    "db": "The database schema: which migrations it has, and upgrading it.",
    "department": "Departments: teams (Support, Accounting) that own tickets.",
    "channel": "Channels: mailboxes attached to departments.",
    "fetch": "Pull new mail from the channels' mailboxes into tickets (run it from cron).",
    "ingest": "Turn raw messages into tickets: .eml files, mbox files, Maildirs, or stdin.",
    "ticket": "Tickets: list, read and answer customer requests.",
    "template": "Notification templates: the texts eddymail mails to customers and to agents.",
    "user": "Customers: people eddymail registered from their mail.",
    "mail": "Raw messages: inspect a file, list what was taken, retry the quarantine.",
    "outbox": "Outgoing mail waiting to be sent (replies, notifications, test letters).",
    "settings": "Team-wide settings stored in the database.",
    "log": "Show the error log: failed mail-server operations, newest first.",
    "agent": "Agents: the people who answer tickets, get assigned and are notified.",
    "watch": ("Turn new mail into tickets within seconds, until stopped "
              "(a service, not a cron job)."),
    "search": "The search index of ticket messages (subject, people, body).",
    "snippet": "Canned replies: texts agents insert into a reply by name.",
})


def main() -> None:
    """Console-script entry point."""
    cli.one_database_per_process = True
    # Until the command is imported the run creates only objects that live as long as the
    # process (modules, classes, functions): collecting garbage among them would walk them
    # over and over for nothing. EddymailGroup.resolve_command turns collection back on.
    gc.disable()
    cli(prog_name="eddymail")


__all__ = ["cli", "main"]
