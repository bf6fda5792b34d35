"""Issue 11, class 12: the README's exit-code table, held against the code.

Three checks: every code the code can exit with is in the table (and nothing else is); the
codes the table gives to named commands only (3, 75) are exactly those whose callbacks can
raise the errors behind them (read from the source, following calls within the module); and
every command answers a usage error with 2 and a broken configuration with 4.
"""

from __future__ import annotations

import ast
import inspect
import re
import textwrap
from pathlib import Path

import click
import pytest

from eddymail import errors
from eddymail.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"
EVERY = "every command"
# The errors (and the lock helper raising one) behind the codes given to named commands.
RAISERS = {
    errors.EXIT_PARTIAL: {"PartialFailure"},
    errors.EXIT_LOCKED: {"TemporaryFailure", "LockBusyError", "fetch_lock"},
}


def table() -> dict[int, str]:
    """{code: "returned by" cell} from the README's exit-code table."""
    section = README.read_text().split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| .*? \| (.*?) \|$", section, re.MULTILINE)
    assert rows, "no exit-code table in the README"
    return {int(code): who for code, who in rows}


def named_commands(cell: str) -> set[str]:
    return {name.split(" (")[0] for name in re.findall(r"`([^`]+)`", cell)}


def leaf_commands() -> dict[str, click.Command]:
    """Every runnable command by its full name ("channel test")."""
    found: dict[str, click.Command] = {}
    context = click.Context(cli)

    def walk(group: click.Group, prefix: str) -> None:
        for name in group.list_commands(context):
            command = group.get_command(context, name)
            assert command is not None
            full = f"{prefix} {name}".strip()
            if isinstance(command, click.Group):
                walk(command, full)
            else:
                found[full] = command

    walk(cli, "")
    return found


def names_reached(function) -> set[str]:
    """Names used by ``function`` and by the functions of its module it calls, transitively."""
    module = inspect.getmodule(function)
    local = {name: value for name, value in vars(module).items() if inspect.isfunction(value)
             and value.__module__ == module.__name__}
    seen: set[str] = set()
    names: set[str] = set()
    pending = [inspect.unwrap(function)]
    while pending:
        current = pending.pop()
        if current.__qualname__ in seen:
            continue
        seen.add(current.__qualname__)
        tree = ast.parse(textwrap.dedent(inspect.getsource(current)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                names.add(node.id)
                if node.id in local:
                    pending.append(inspect.unwrap(local[node.id]))
    return names


def test_every_exit_code_of_the_code_is_in_the_table_and_no_other():
    codes = {value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    classes = {cls.exit_code for cls in vars(errors).values()
               if isinstance(cls, type) and issubclass(cls, errors.EddymailError)}
    assert classes <= codes
    assert set(table()) == codes | {130}  # 130: the Ctrl-C of the error boundary


@pytest.mark.parametrize("code", sorted(RAISERS))
def test_codes_of_named_commands_belong_to_exactly_those_commands(code):
    cell = table()[code]
    listed = named_commands(cell)
    raising = {name for name, command in leaf_commands().items()
               if command.callback and names_reached(command.callback) & RAISERS[code]}
    assert listed == raising, f"exit {code}: README says {listed}, the code {raising}"


def test_every_command_answers_a_wrong_option_with_2(eddymail):
    for name in leaf_commands():
        result = eddymail(*name.split(), "--no-such-option", code=None)
        assert result.exit_code == 2, (name, result.exit_code, result.output)


def test_every_command_answers_a_broken_configuration_with_4(eddymail, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text("[database\nurl = \n")
    for name, command in leaf_commands().items():
        arguments = ["1" if parameter.type is click.INT else "x"
                     for parameter in command.params
                     if isinstance(parameter, click.Argument) and parameter.required]
        result = eddymail("-c", str(broken), *name.split(), *arguments, code=None,
                          input="")
        expected = 75 if name == "ingest" else 4  # a mail server's pipe: try again later
        if result.exit_code != expected:  # only commands that never read the configuration
            assert name in NO_CONFIGURATION, (name, result.exit_code, result.output)
        assert "Traceback" not in result.output


# Commands that work without a configuration (what they show ships with eddymail).
NO_CONFIGURATION = {"channel presets", "mail inspect"}
