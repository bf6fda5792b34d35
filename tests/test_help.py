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
