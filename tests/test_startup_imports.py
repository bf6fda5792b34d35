"""What a command imports: the per-message and per-minute commands leave the heavy libraries out.

A mail server may start ``eddymail ingest`` for every message and cron starts ``fetch`` every
minute, so start-up cost is paid again and again (issue 14). Each case runs the real CLI in a
fresh interpreter and reads ``sys.modules`` when it exits; the figures themselves are measured
by bench/startup.py, never here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# Loaded only by the commands that need them: the keyring (passwords), Jinja (notification
# templates), rich's console (tables and colours for a person at a terminal), lxml and the
# HTML converter (HTML mail), the PostgreSQL driver (a PostgreSQL database).
HEAVY = ("keyring", "jinja2", "rich.console", "psycopg2", "lxml", "inscriptis",
         "eddymail.mail.message.htmltext")

# Runs the console-script entry point and writes, when the process exits, the loaded modules,
# the eddymail modules that compiled a regular expression while being imported (patterns are
# compiled on first use: eddymail.patterns) and whether the garbage collector is on again.
_DRIVER = """\
import atexit, gc, json, re, sys
report = sys.argv.pop(1)
compiled_by = []
compile_now = re.compile
def compile_watched(pattern, flags=0):
    caller = sys._getframe(1)
    module = caller.f_globals.get("__name__", "")
    if caller.f_code.co_name == "<module>" and module.startswith("eddymail"):
        compiled_by.append(module)
    return compile_now(pattern, flags)
re.compile = compile_watched
atexit.register(lambda: open(report, "w").write(json.dumps({
    "modules": sorted(sys.modules), "compiled_by": compiled_by,
    "collecting": gc.isenabled(), "frozen": gc.get_freeze_count()})))
sys.argv[0] = "eddymail"
from eddymail.cli import main
main()
"""

PLAIN_TEXT = (
    b"From: Olga Petrova <olga@customer.example>\r\n"
    b"To: help@example.com\r\n"
    b"Subject: The printer is jammed\r\n"
    b"Message-ID: <startup-imports@customer.example>\r\n"
    b"Date: Fri, 27 Nov 2026 09:00:00 +0000\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello, the printer on the second floor is jammed again.\r\n"
)


def run_report(tmp_path: Path, *args: str, stdin: bytes = b"", code: int = 0) -> dict[str, Any]:
    """What ``eddymail ARGS`` did in a fresh interpreter (the test's environment): see
    ``_DRIVER``."""
    report = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}.json"
    completed = subprocess.run([sys.executable, "-c", _DRIVER, str(report), *args],
                               input=stdin, capture_output=True, env=os.environ.copy(),
                               timeout=120, check=False)
    assert completed.returncode == code, completed.stderr.decode(errors="replace")
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def loaded_modules(tmp_path: Path, *args: str, stdin: bytes = b"", code: int = 0) -> set[str]:
    """Modules loaded by ``eddymail ARGS`` run in a fresh interpreter (the test's environment)."""
    return set(run_report(tmp_path, *args, stdin=stdin, code=code)["modules"])


def heavy_in(modules: set[str], heavy_modules: tuple[str, ...] = HEAVY) -> list[str]:
    """The heavy modules (or any of their submodules) among ``modules``."""
    return sorted(name for name in modules if any(
        name == heavy or name.startswith(heavy + ".") for heavy in heavy_modules))


@pytest.mark.parametrize("args", [("--version",), ("--help",)])
def test_version_and_help_load_no_heavy_module(tmp_path, args):
    modules = loaded_modules(tmp_path, *args)
    assert heavy_in(modules) == []
    assert "peewee" not in modules  # nor the database layer, nor any command


def test_help_of_the_cron_job_loads_no_heavy_module(tmp_path):
    assert heavy_in(loaded_modules(tmp_path, "fetch", "--help")) == []


@pytest.mark.parametrize("mode", [("-q",), ("--json",), ()])
def test_ingest_of_plain_text_loads_no_heavy_module(eddymail, support, tmp_path, mode):
    support("mailbox", "--email", "help@example.com", "--protocol", "none", password=None)
    modules = loaded_modules(tmp_path, *mode, "ingest", "--channel", "mailbox", stdin=PLAIN_TEXT)
    assert heavy_in(modules) == []
    assert "charset_normalizer" not in modules  # the charset was declared
    # It did ingest: the ticket is there (the same bytes again are a duplicate).
    tickets = eddymail.json("ticket", "list")["tickets"]
    assert [ticket["subject"] for ticket in tickets] == ["The printer is jammed"]


# Light, but loaded by every run once: the platformdirs Unix module and what it imports (the
# XDG directories are read by eddymail.config on Linux and the BSDs).
NOT_FOR_A_RUN = ("platformdirs", "tempfile", "shutil", "bz2", "lzma")
# What the channel and agent commands need, not a message arriving or a fetch: descriptions
# of channels and agents, channel drafts, provider presets, OAuth settings (a channel without
# a preset that signs in with a password).
NOT_FOR_MAIL = ("eddymail.services.channels.registry", "eddymail.services.channels.drafts",
                "eddymail.services.agents", "eddymail.presets", "eddymail.services.oauth")


@pytest.mark.parametrize("args", [("--version",), ("-q", "ingest", "--channel", "mailbox")])
def test_a_run_compiles_no_pattern_while_importing(support, tmp_path, args):
    support("mailbox", "--email", "help@example.com", "--protocol", "none", password=None)
    report = run_report(tmp_path, *args, stdin=PLAIN_TEXT)
    assert report["compiled_by"] == []  # module patterns are LazyPatterns
    assert heavy_in(set(report["modules"]), NOT_FOR_A_RUN + NOT_FOR_MAIL) == []


def test_a_run_collects_garbage_again_once_its_command_is_imported(support, tmp_path):
    # main() pauses the collector while the command is imported; the command itself (a fetch
    # of thousands of messages) runs with it on, what the imports made frozen out of its way.
    support("mailbox", "--email", "help@example.com", "--protocol", "none", password=None)
    report = run_report(tmp_path, "-q", "ingest", "--channel", "mailbox", stdin=PLAIN_TEXT)
    assert report["collecting"] is True
    assert report["frozen"] > 10_000  # modules, classes and functions of the imports


def test_ingest_that_queues_a_registration_loads_no_heavy_module(eddymail, support, tmp_path):
    # A new customer at a department that sends mail gets the shipped registration letter:
    # rendered without Jinja (eddymail.templates.plain) and queued, not sent.
    support("mailbox", "--email", "help@example.com", "--protocol", "none",
            "--smtp-host", "127.0.0.1", "--smtp-port", "2525", "--smtp-security", "none",
            "--password-command", "true", password=None)
    eddymail("department", "edit", "Support", "--outgoing-channel", "mailbox")
    modules = loaded_modules(tmp_path, "-q", "ingest", "--channel", "mailbox", stdin=PLAIN_TEXT)
    assert heavy_in(modules) == []
    queued = eddymail.json("outbox", "list")["outbox"]
    assert [item["template"] for item in queued] == ["registration"]


def test_the_check_sees_a_heavy_module(eddymail, support, tmp_path, monkeypatch):
    # Guard against a check that passes because it reads nothing: an HTML message needs the
    # converter, and a table for a person at a terminal (TTY_COMPATIBLE=1) needs rich.
    support("mailbox", "--email", "help@example.com", "--protocol", "none", password=None)
    html = PLAIN_TEXT.replace(b"text/plain", b"text/html").replace(
        b"Hello,", b"<p>Hello,</p>")
    html_run = run_report(tmp_path, "-q", "ingest", "--channel", "mailbox", stdin=html)
    assert "inscriptis" in html_run["modules"]
    # The HTML converter still compiles its patterns when imported (only HTML mail loads it).
    assert "eddymail.mail.message.htmltext" in html_run["compiled_by"]
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    assert "rich.console" in loaded_modules(tmp_path, "department", "list")
    assert heavy_in({"jinja2.sandbox", "jinja2x", "lxml"}) == ["jinja2.sandbox", "lxml"]


def test_a_postgresql_run_gets_its_driver(eddymail, postgres_url, monkeypatch, tmp_path):
    # The console script imports peewee for the configured engine only (eddymail.db.drivers):
    # with PostgreSQL configured, psycopg2 is there and the whole run works.
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", postgres_url)
    eddymail("init")
    eddymail("channel", "add", "mailbox", "--department", "Support", "--email",
             "help@example.com", "--protocol", "none")
    modules = loaded_modules(tmp_path, "-q", "ingest", "--channel", "mailbox", stdin=PLAIN_TEXT)
    assert "psycopg2" in modules
    assert [ticket["subject"] for ticket in eddymail.json("ticket", "list")["tickets"]] == [
        "The printer is jammed"]


# The parser, and what only a message to parse needs.
PARSER = ("eddymail.mail.message.parse", "eddymail.mail.message.parttree", "email.policy",
          "eddymail.mail.message.compose")
# What only a message to store needs: the ingestion pipeline, tickets and their history, the
# search index (a fetch reads its ledger with eddymail.services.ingest.records).
NOT_FOR_AN_IDLE_FETCH = ("eddymail.services.ingest.pipeline", "eddymail.services.tickets",
                         "eddymail.db.searchindex", "eddymail.searchtext")


def test_a_fetch_that_finds_nothing_new_loads_no_parser(eddymail, support, dovecot, mail_user,
                                                        tmp_path):
    # cron starts fetch every minute and most runs find nothing: those must not load the
    # parser, the composer or the heavy libraries. The child process has no keyring of the
    # test's: the password comes from a command.
    support("mailbox", "--email", mail_user.address, "--login", mail_user.login,
            "--protocol", "imap", "--host", dovecot.host, "--port", str(dovecot.imaps_port),
            "--security", "ssl", "--ca-file", str(dovecot.pki.ca_file), "--initial", "none",
            "--password-command", f"echo {mail_user.password}", password=None)
    eddymail("-q", "fetch")  # the first connection records where new mail starts
    idle_run = run_report(tmp_path, "-q", "fetch")  # exit 0: it did connect and log in
    idle = set(idle_run["modules"])
    assert heavy_in(idle, HEAVY + PARSER + NOT_FOR_A_RUN + NOT_FOR_MAIL
                    + NOT_FOR_AN_IDLE_FETCH) == []
    assert idle_run["compiled_by"] == []
    # With a message to take, the same command does load the parser (the check can fail).
    dovecot.deliver(mail_user, PLAIN_TEXT)
    busy = loaded_modules(tmp_path, "-q", "fetch")
    assert {"eddymail.mail.message.parse", "eddymail.services.ingest.pipeline"} <= busy
    assert [t["subject"] for t in eddymail.json("ticket", "list")["tickets"]] == [
        "The printer is jammed"]
