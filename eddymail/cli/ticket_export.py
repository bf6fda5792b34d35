"""``eddymail ticket export``: tickets as JSON, CSV or an mbox file, to stdout or a file."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import click

from eddymail.cli.app import json_option, state, with_database
from eddymail.cli.plaintext import to_jsonable
from eddymail.safetext import for_json, for_terminal
from eddymail.services.tickets import export as exporting
from eddymail.services.tickets.queries import STATUS_FILTERS


@click.command("export")
@click.argument("tickets", nargs=-1, type=int, metavar="[TICKET]...")
@click.option("--format", "format_", type=click.Choice(exporting.FORMATS), default="json",
              show_default=True, help="json: whole tickets; csv: one row per ticket; "
              "mbox: the mail as received and sent.")
@click.option("-o", "--output", "path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this new file (mode 0600) instead of stdout.")
@click.option("--status", type=click.Choice(STATUS_FILTERS), default="all", show_default=True)
@click.option("--department", help="Only this department's tickets.")
@click.option("--tag", "tags", multiple=True, metavar="TAG", help="Only tickets with this tag.")
@click.option("--search", metavar="WORDS", help="Only the tickets this search finds.")
@json_option
@with_database
def export(tickets: tuple[int, ...], format_: str, path: Path | None, status: str,
           department: str | None, tags: tuple[str, ...], search: str | None) -> None:
    """Export tickets (all, or those named or found) with their messages.

    The output is safe for what reads it: CSV cells cannot run as spreadsheet formulas,
    mbox messages cannot forge "From " lines, JSON escapes control characters. An
    existing file is never overwritten.

    \b
    Examples:
      eddymail ticket export --format json -o tickets.json
      eddymail ticket export 42 57 --format mbox -o case.mbox
      eddymail ticket export --status open --tag vip --format csv > vip.csv
    """
    ids = exporting.select_ids(tickets, status=status, department=department, search=search,
                               tags=tags)
    out = state().output
    if path is None and sys.stdout.isatty() and format_ == "mbox":
        raise click.UsageError("An mbox export is raw mail: write it with -o FILE, or pipe it.")
    if path is None and out.json_mode and format_ != "json":
        # stdout would hold the CSV or mbox, not the one JSON document --json promises.
        raise click.UsageError(f"--json with --format {format_} needs -o FILE (the JSON "
                               "document then says what was written).")
    with _destination(path) as stream:
        summary = _write(format_, ids, stream)
    if path is not None:
        out.emit({"export": {"file": str(path), "format": summary.format,
                             "tickets": summary.tickets, "messages": summary.messages}},
                 lambda: out.success(f"Exported {summary.tickets} ticket(s) "
                                     f"({summary.messages} message(s)) to {path}."))


def _write(format_: str, ids: list[int], stream: BinaryIO) -> exporting.ExportSummary:
    if format_ == "csv":
        return exporting.write_csv(ids, stream)
    if format_ == "mbox":
        return exporting.write_mbox(ids, stream)
    count = messages = 0
    stream.write(b'{\n  "tickets": [')
    for detail in exporting.details(ids):
        document = json.dumps(to_jsonable(detail), ensure_ascii=False, indent=2)
        stream.write((("," if count else "") + "\n" + for_json(document)).encode("utf-8"))
        count += 1
        messages += len(detail.messages)
    stream.write(b"\n  ]\n}\n")
    return exporting.ExportSummary("json", count, messages)


@contextlib.contextmanager
def _destination(path: Path | None) -> Iterator[BinaryIO]:
    """The new file (written whole or not at all), or stdout (escaped on a terminal)."""
    if path is None:
        if sys.stdout.isatty():  # what mail said must not drive the terminal
            buffer = io.BytesIO()
            yield buffer
            sys.stdout.write(for_terminal(buffer.getvalue().decode("utf-8", "replace")))
            return
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    if path.exists():
        raise click.UsageError(f"{path} exists already: choose a new file name.")
    descriptor, temporary = tempfile.mkstemp(dir=path.parent or Path("."), prefix=".export-")
    try:
        with os.fdopen(descriptor, "wb") as stream:  # mkstemp: mode 0600, customer data
            yield stream
        os.link(temporary, path)  # fails if the name was taken meanwhile: never overwrite
    finally:
        os.unlink(temporary)

