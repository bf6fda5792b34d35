"""Shared fixtures: an isolated environment per test and the real CLI through CliRunner.

Every test gets its own SQLite file, config and data directories under ``tmp_path``, and
(from the harness plugin) an in-memory keyring, so no test touches the user's files or the
real keyring. Real servers come from ``tests.harness.plugin``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from eddymail.cli import cli

pytest_plugins = ["tests.harness.plugin", "tests.oauth_helpers"]


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point every path eddymail uses into the test's own directory."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("EDDYMAIL_DATABASE_URL", f"sqlite:///{tmp_path / 'eddymail.db'}")
    monkeypatch.delenv("EDDYMAIL_CONFIG", raising=False)
    monkeypatch.delenv("EDDYMAIL_AGENT", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    # Wide enough that table cells are not folded, so assertions can look for whole phrases.
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


@pytest.fixture
def database_path(isolated_environment: Path) -> Path:
    """The SQLite file the CLI uses in this test."""
    return isolated_environment / "eddymail.db"


class CliHarness:
    """Runs the real CLI in-process and parses its JSON output."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str, input: str | None = None, code: int | None = 0) -> Result:
        """Run ``eddymail ARGS``; check the exit code unless ``code`` is None."""
        result = self.runner.invoke(cli, list(args), input=input, catch_exceptions=False)
        if code is not None:
            assert result.exit_code == code, (
                f"eddymail {' '.join(args)} exited {result.exit_code}, expected {code}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def json(self, *args: str, input: str | None = None, code: int | None = 0) -> Any:
        """Run with ``--json`` and return the parsed document (stdout must be only JSON)."""
        result = self(*args, "--json", input=input, code=code)
        return json.loads(result.stdout)


@pytest.fixture
def eddymail() -> CliHarness:
    """The CLI, e.g. ``eddymail("department", "add", "Support")``."""
    return CliHarness()


@pytest.fixture
def support(eddymail: CliHarness) -> Callable[..., Any]:
    """A Support department (returns a function that adds channels to it)."""
    eddymail("department", "add", "Support")

    def add_channel(name: str, *options: str, password: str | None = "secret") -> Any:
        args = ["channel", "add", name, "--department", "Support", *options]
        if password is not None:
            args.append("--password-stdin")
        return eddymail.json(*args, input=(password + "\n") if password is not None else None)

    return add_channel
