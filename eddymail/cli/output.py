"""The one output module: rich tables for people, one JSON document for scripts.

Rules kept here so no command can get them wrong:
- ``--json``: exactly one JSON document on stdout (snake_case keys, ISO-8601 UTC times,
  collections present even when empty); messages and errors go to stderr.
- ``-q``: nothing on stdout on success; errors still reach stderr.
- Every string is shown through ``safetext.for_terminal`` and as ``rich.text.Text``, never
  as markup, so text from an email or a server cannot drive the terminal or rich.
- Colour follows the terminal: rich turns it off for pipes and honours ``NO_COLOR``.

rich's console is imported only when something is drawn for a person at a terminal: a
message line, a table or a "name: value" view going to a pipe or a file (cron, a mail
server running ``ingest``, ``ticket list | grep``) is written as the same plain text rich
would write there (laid out by ``cli/plaintext.py``; ``tests/test_plain_output.py``
compares them), so those runs do not pay for importing and running rich.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from eddymail.cli.layout import (
    fit_widths,
    plain_width,
    share_widths,
    shows_styles,
)
from eddymail.cli.plaintext import (
    Ruler,
    Styled,
    cell_text,
    plain_fields,
    plain_table,
    to_jsonable,
    widest_line,
    write,
)
from eddymail.patterns import LazyPattern
from eddymail.safetext import for_json, for_terminal

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text


def cell(value: Any) -> Text:
    """A value as a safe one-line table cell (a ``Styled`` one may have several lines)."""
    from rich.text import Text

    if isinstance(value, Styled):
        text = Text()
        for piece, style in value.pieces:
            text.append("\n" if piece == "\n" else for_terminal(piece, multiline=False), style)
        return text
    return Text(cell_text(value))


class Output:
    """Where a command's results, messages and errors go."""

    def __init__(self, *, json_mode: bool = False, quiet: bool = False, verbose: int = 0) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose
        self._stdout: Console | None = None
        self._stderr: Console | None = None
        # (stream, whether it shows styles) by to_stderr: asked once per stream, not per line
        self._styles: dict[bool, tuple[TextIO, bool]] = {}
        self._held = False  # inside a piped ``paged()``: stdout is flushed at its end

    # Consoles are made on first use so they bind to the streams current at that moment
    # (click's test runner swaps sys.stdout per invocation).
    @property
    def width(self) -> int:
        """The width results are laid out for: the terminal's, or the one rich would take
        for a pipe or a file (``$COLUMNS``, else the terminal the command runs in, else 80)."""
        if self._writes_plain(to_stderr=False) and self._stdout is None:
            return plain_width()
        return self.stdout.width

    @property
    def stdout(self) -> Console:
        """The console for results."""
        if self._stdout is None:
            self._stdout = _console(sys.stdout)
        return self._stdout

    @property
    def stderr(self) -> Console:
        """The console for messages and errors."""
        if self._stderr is None:
            self._stderr = _console(sys.stderr)
        return self._stderr

    def emit(self, payload: Any, render: Callable[[], None] | None = None) -> None:
        """Print a command's result: ``payload`` as JSON, or ``render()`` for people."""
        if self.json_mode:
            document = json.dumps(to_jsonable(payload), ensure_ascii=False, indent=2)
            sys.stdout.write(for_json(document) + "\n")
            sys.stdout.flush()
        elif not self.quiet and render is not None:
            render()

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        title: str | None = None,
        empty: str = "Nothing to show.",
        wrap: Iterable[str] = (),
        grow: dict[str, int] | None = None,
    ) -> None:
        """A table of safe cells, or the ``empty`` sentence when there are no rows.

        A row is one line (cells cut with an ellipsis) so lists stay scannable; the columns
        named in ``wrap`` (long server answers, hints) fold instead. The columns named in
        ``grow`` (name -> share) split the width the others leave; those others keep their
        whole width, so numbers, statuses and dates never shrink.
        """
        rows = [list(row) for row in rows]
        if not rows:
            self.line(empty, style="dim")
            return
        wrapped = set(wrap)
        headers = [for_terminal(column, multiline=False) for column in columns]
        texts = [[cell_text(value) for value in row] for row in rows]
        naturals = [max([_RULER.cells(header), *(widest_line(row[index], _RULER) for row in texts)])
                    for index, header in enumerate(headers)]
        # Between two columns: a space of padding each side and the (blank) rule.
        available = self.width - 3 * (len(columns) - 1)
        shares = [(grow or {}).get(column, 0) for column in columns]
        widths = (share_widths(naturals, shares, available) if any(shares)
                  else fit_widths(naturals, available))
        if (self._writes_plain(to_stderr=False) and not title and not wrapped
                and sum(widths) <= available):
            write(sys.stdout, plain_table(headers, texts, widths, _RULER), flush=not self._held)
            return
        from rich import box
        from rich.table import Table

        table = Table(
            title=for_terminal(title, multiline=False) if title else None,
            header_style="bold",
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            padding=(0, 1),
        )
        for header, width in zip(headers, widths, strict=True):
            folds = header in wrapped
            table.add_column(header, width=width, no_wrap=not folds,
                             overflow="fold" if folds else "ellipsis")
        for row in rows:
            table.add_row(*(cell(value) for value in row))
        self.stdout.print(table)

    def block(self, body: str, *, indent: int = 0, style: str | None = None) -> None:
        """A paragraph of (untrusted) text folded to the terminal's width, indented."""
        if self.quiet or self.json_mode:
            return
        from rich.padding import Padding
        from rich.text import Text

        text = Text(for_terminal(body, multiline=False), style=style or "")
        self.stdout.print(Padding(text, (0, 0, 0, indent), expand=False), soft_wrap=False)

    @contextlib.contextmanager
    def paged(self) -> Iterator[None]:
        """Show what is printed inside through a pager when it is longer than the screen.

        Only for a person at a terminal: piped, redirected, ``--json`` or ``-q`` output is
        written as it is. The pager is ``$PAGER``, else ``less -R`` (which keeps colours);
        when it cannot be started the text is printed directly.
        """
        if self.quiet or self.json_mode or not (
                self._stdout.is_terminal if self._stdout is not None
                else shows_styles(sys.stdout)):
            # Written as a whole: one flush at the end, not one per line (``ticket show`` of
            # a long thread into a pipe writes thousands).
            self._held = True
            try:
                yield
            finally:
                self._held = False
                sys.stdout.flush()
            return
        import io

        from rich.console import Console

        console = self.stdout
        buffer = io.StringIO()
        self._stdout = Console(file=buffer, markup=False, emoji=False, highlight=False,
                               soft_wrap=True, force_terminal=True, width=console.width,
                               color_system="auto" if console.color_system else None)
        try:
            yield
        finally:
            self._stdout = console
        text = buffer.getvalue()
        if _screen_lines(text, console.width) < console.height or not _page(text):
            console.file.write(text)
            console.file.flush()

    def fields(self, pairs: Iterable[tuple[str, Any]], *, title: str | None = None) -> None:
        """A two-column "name: value" view for ``show`` commands."""
        pairs = [(for_terminal(name, multiline=False), value) for name, value in pairs]
        if self._writes_plain(to_stderr=False):
            lines = plain_fields([(name, cell_text(value)) for name, value in pairs],
                                 self.width, _RULER)
            if lines is not None:  # else a value must fold, as rich folds it
                title_line = [for_terminal(title, multiline=False)] if title else []
                write(sys.stdout, "\n".join([*title_line, *lines]) + "\n",
                       flush=not self._held)
                return
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column(overflow="fold")
        for name, value in pairs:
            grid.add_row(Text(name), cell(value))
        if title:
            self.stdout.print(Text(for_terminal(title, multiline=False), style="bold underline"))
        self.stdout.print(grid)

    def text(self, body: str, *, style: str | None = None) -> None:
        """A block of (untrusted, multi-line) text, shown safely."""
        self._say(False, (for_terminal(body), style or ""))

    def line(self, message: str, *, style: str | None = None) -> None:
        """One line of result text on stdout (silent under ``-q`` and ``--json``)."""
        if self.quiet or self.json_mode:
            return
        self._say(False, (for_terminal(message), style or ""))

    def escaped_lines(self, lines: Sequence[tuple[str, str]]) -> None:
        """Many result lines, each (text, style), written at once (silent under ``-q`` and
        ``--json``). The caller has already passed every untrusted part of each text through
        ``for_terminal`` (escaping a whole line again would only cost: the escape is per
        character); ``ticket show`` of a long thread writes its thread this way."""
        if self.quiet or self.json_mode or not lines:
            return
        if self._writes_plain(to_stderr=False):
            body = "\n".join(text for text, _ in lines)
            if "\t" not in body:  # else rich expands the tabs, line by line below
                write(sys.stdout, body + "\n", flush=not self._held)
                return
        for text, style in lines:
            self._say(False, (text, style))

    def success(self, message: str) -> None:
        """A confirmation ("Department Support added.")."""
        self.line(message, style="green")

    def info(self, message: str) -> None:
        """Advice for the person at the terminal; stderr, silent under ``-q``."""
        if not self.quiet:
            self._say(True, (for_terminal(message), "cyan"))

    def ask(self, message: str) -> None:
        """Something the person must do now (open a page, type a code); stderr, and shown
        even under ``-q`` and ``--json``: without it the command cannot finish."""
        self._say(True, (for_terminal(message), "bold"))

    def warning(self, message: str) -> None:
        """Something that worked but needs attention; stderr, silent under ``-q``."""
        if not self.quiet:
            self._say(True, ("Warning: " + for_terminal(message), "yellow"))

    @contextlib.contextmanager
    def progress(self, description: str) -> Iterator[Callable[[str, int, int], None]]:
        """A progress bar on a terminal (nothing for scripts, cron or ``--json``).

        Yields ``update(label, done, total)``.
        """
        on_terminal = (self._stderr.is_terminal if self._stderr is not None
                       else shows_styles(sys.stderr))
        if self.quiet or self.json_mode or not on_terminal:
            yield lambda label, done, total: None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        # markup=False: TextColumn parses its text as rich markup by default, so a label
        # like "[/]" would raise MarkupError and "[link=...]" would make a hyperlink.
        with Progress(
            TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=self.stderr, transient=True,
        ) as bar:
            task = bar.add_task(for_terminal(description, multiline=False), total=None)

            def update(label: str, done: int, total: int) -> None:
                bar.update(task, description=for_terminal(label, multiline=False),
                           completed=done, total=total)

            yield update

    def error(self, message: str, hint: str | None = None) -> None:
        """A failure: one line on stderr (plus the hint), always shown."""
        pieces = [("Error: ", "bold red"), (for_terminal(message, multiline=False), "")]
        if hint:
            pieces += [("\nHint: ", "bold"), (for_terminal(hint, multiline=False), "")]
        self._say(True, *pieces)

    def traceback(self, text: str) -> None:
        """A traceback for ``-v``: on stderr, always shown, escaped like any untrusted text
        (an exception's message may quote a header, a file name or a server answer)."""
        self._say(True, (for_terminal(text), "dim"))

    def _say(self, to_stderr: bool, *pieces: tuple[str, str]) -> None:
        """Print (text, style) pieces as one message, already made safe by the caller.

        To a pipe or a file, rich writes exactly the text and a newline (no colours, no
        wrapping under ``soft_wrap``); that is written here directly, so cron runs and mail
        server deliveries need not import rich, and ``ticket show`` of a long thread into a
        pipe does not pay rich's rendering once per line. Tabs (rich expands them to its own
        tab stops) and consoles writing elsewhere (a pager's buffer, a test's) still go
        through rich.
        """
        plain = "".join(text for text, _ in pieces)
        if "\t" not in plain and self._writes_plain(to_stderr):
            if to_stderr and self._held:
                sys.stdout.flush()  # what came before it on a shared pipe stays before it
            write(sys.stderr if to_stderr else sys.stdout, plain + "\n",
                   flush=to_stderr or not self._held)
            return
        from rich.text import Text

        text = Text()
        for piece, style in pieces:
            text.append(piece, style=style or None)
        (self.stderr if to_stderr else self.stdout).print(text)

    def _writes_plain(self, to_stderr: bool) -> bool:
        """Whether that stream gets exactly the text rich would write there, no styles:
        a pipe or a file, not a terminal, and no console of ours writing elsewhere (a
        pager's buffer, a test's)."""
        console = self._stderr if to_stderr else self._stdout
        stream = sys.stderr if to_stderr else sys.stdout
        if console is not None and (console.file is not stream or console.is_terminal):
            return False
        known = self._styles.get(to_stderr)
        if known is None or known[0] is not stream:
            known = self._styles[to_stderr] = (stream, shows_styles(stream))
        return not known[1]


def _cell_len(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)


def _set_cell_size(text: str, width: int) -> str:
    from rich.cells import set_cell_size

    return set_cell_size(text, width)


# rich's widths of characters outside ASCII, for the plain layouts (rich.cells imported
# only when such a character is shown).
_RULER = Ruler(_cell_len, _set_cell_size)

_COLOURS = LazyPattern(r"\x1b\[[0-9;]*m")  # all rich writes (what mail said is escaped)


def _screen_lines(text: str, width: int) -> int:
    """How many terminal lines ``text`` takes (long lines wrap on the screen)."""
    from rich.cells import cell_len

    return sum(max(1, math.ceil(cell_len(line) / max(width, 1)))
               for line in _COLOURS.sub("", text).removesuffix("\n").split("\n"))


def _page(text: str) -> bool:
    """Run the pager on ``text``; False when there is none to run."""
    import shlex  # (here: only a person's long screen loads the means to start a pager)
    import subprocess

    command = shlex.split(os.environ.get("PAGER") or "") or ["less", "-R"]
    try:
        pager = subprocess.Popen(command, stdin=subprocess.PIPE)
    except OSError:
        return False
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):  # the reader quit early
        pager.communicate(text.encode(sys.stdout.encoding or "utf-8", errors="replace"))
    pager.wait()
    return True


def _console(stream: TextIO) -> Console:
    from rich.console import Console

    # markup/emoji/highlight off: nothing we print is ever parsed as rich markup.
    # soft_wrap: a message is one line however long, so cron mail and grep see it whole.
    return Console(file=stream, markup=False, emoji=False, highlight=False, soft_wrap=True)
