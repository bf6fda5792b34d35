"""Every group and command has --help with a one-line summary and an example."""

from __future__ import annotations

import subprocess
import sys

import click

from eddymail import __version__
from eddymail.cli import cli


def all_commands(group: click.Group, path: tuple[str, ...] = ()):
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from all_commands(command, (*path, name))


def test_every_command_has_a_summary_and_an_example(eddymail):
    commands = list(all_commands(cli))
    assert len(commands) > 20
    for path, command in commands:
        result = eddymail(*path, "--help")
        assert command.get_short_help_str(), path
        assert "Example" in result.stdout, f"eddymail {' '.join(path)} --help has no example"
        assert result.stdout.startswith("Usage:"), path


def test_version(eddymail):
    assert eddymail("--version").stdout.strip() == f"eddymail, version {__version__}"


def test_python_dash_m_works():
    completed = subprocess.run([sys.executable, "-m", "eddymail", "--version"],
                               capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 0
    assert __version__ in completed.stdout


def test_unknown_command_is_a_usage_error(eddymail):
    assert eddymail("frobnicate", code=2).exit_code == 2


def test_help_lists_commands_by_their_own_summaries():
    # `eddymail --help` lists the lazy commands from their summaries without importing them;
    # a summary that drifted from the command's docstring would show a stale line.
    lazy = {name for name in cli.lazy_commands if name not in cli.commands}
    assert set(cli.lazy_summaries) == set(cli.lazy_commands)
    context = click.Context(cli)
    for name in lazy:
        command = cli.get_command(context, name)
        stand_in = click.Command(name, help=cli.lazy_summaries[name])
        for limit in (20, 45, 90, 500):
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), name


def test_help_lists_every_command_and_imports_none(tmp_path):
    # In a fresh interpreter: the list is complete and no command module was loaded for it
    # (cli/layout.py and cli/plaintext.py lay out what output.py shows: no command).
    script = (
        "import sys\n"
        "from eddymail.cli import cli\n"
        "try:\n"
        "    cli(['--help'], prog_name='eddymail')\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('eddymail.cli.') and\n"
        "                m not in ('eddymail.cli.app', 'eddymail.cli.output',\n"
        "                          'eddymail.cli.layout', 'eddymail.cli.plaintext'))\n"
        "print('LOADED', loaded)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                               timeout=120, check=True)
    assert "LOADED []" in completed.stdout
    listed = completed.stdout.split("Commands:")[1]
    for name in cli.lazy_commands:
        assert f"\n  {name} " in listed, name
