"""``eddymail channel test``: can each channel receive and send mail (the CI check)."""

from __future__ import annotations

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.errors import PartialFailure
from eddymail.services.channels import check as channel_test


@click.command("test")
@click.argument("names", nargs=-1)
@click.option("--all", "all_channels", is_flag=True, help="Test every enabled channel.")
@click.option("--no-send", is_flag=True, help="Only log in to SMTP; send no test letter.")
@click.option("--timeout", type=float, help="Seconds per network step (default from config).")
@json_option
@with_database
def test(names: tuple[str, ...], all_channels: bool, no_send: bool, timeout: float | None) -> None:
    """Check that channels can receive and send mail (a CI-friendly connection check).

    Incoming: connect, verify TLS, log in, open the folder (IMAP) or count messages (POP3).
    Outgoing: connect, verify TLS, log in and send a test letter to the mailbox itself.
    Failures go to the error log (eddymail log) with the server's answer and a hint.
    Exit code 0 when every check passed, 3 when any failed.

    A password kept unencrypted on disk (keyring's PlaintextKeyring, which it picks
    silently where no desktop keyring exists) adds a "keyring" row marked WARNING
    (JSON: ok false, warning true); it does not change the exit code, since mail flows.

    \b
    Examples:
      eddymail channel test support
      eddymail channel test --all --no-send --json
    """
    if names and all_channels:
        raise click.UsageError("Name channels or give --all, not both.")
    app = state()
    out = app.output
    limit = timeout or float(app.runtime.config.get("network", "timeout"))
    selected = channel_test.channels_to_test(list(names))
    if not selected:
        raise click.UsageError("There are no enabled channels to test.")
    results = []
    for channel_name in selected:
        # Progress is for a person at a terminal; cron gets one line per failure only.
        if not out.json_mode and not out.quiet and out.stderr.is_terminal:
            out.stderr.print(f"Testing {channel_name}…", style="dim", markup=False)
        results.append(channel_test.test_channel(channel_name, send=not no_send, timeout=limit))
    out.emit({"channels": results}, lambda: _render_tests(results))
    if not all(result.ok for result in results):
        failed = ", ".join(result.name for result in results if not result.ok)
        raise PartialFailure(f"Channel test failed for: {failed} (details: eddymail log).")


def _render_tests(results: list[channel_test.ChannelTestResult]) -> None:
    out = state().output
    rows = []
    for result in results:
        for check in result.checks:
            rows.append(
                [
                    result.name,
                    check.check,
                    "ok" if check.ok else "WARNING" if check.warning else "FAILED",
                    check.answer,
                    check.hint or "",
                ]
            )
    out.table(
        ["Channel", "Check", "Result", "Server answer", "Hint"], rows,
        wrap=("Server answer", "Hint"),
    )
