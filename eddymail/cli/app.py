"""The root command, its global options and the one error boundary.

Every expected failure is an ``EddymailError``; it is turned into a message on stderr and
its exit code here and nowhere else. Anything unexpected is reported in one line too, with
the traceback only under ``-v``.
"""

from __future__ import annotations

import functools
import gc
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from eddymail import __version__
from eddymail.cli.output import Output
from eddymail.errors import EXIT_FAILED, EddymailError, LockBusyError
from eddymail.safetext import for_terminal

# Everything else is imported where it is used, so that `eddymail --version`, `--help` and a
# mail server piping one message into `ingest` load only what they need (issue 14).
if TYPE_CHECKING:
    from eddymail.services.actors import Actor
    from eddymail.services.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class AppState:
    """What the root command hands every subcommand."""

    # A plain class, not a dataclass: the dataclasses module (and the inspect module it
    # loads) would be most of what `eddymail --version` imports.
    def __init__(self, config_path: str | None, output: Output, verbose: int = 0,
                 acting_as: str | None = None) -> None:
        self.config_path = config_path
        self.output = output
        self.verbose = verbose
        self.acting_as = acting_as  # --as
        self._runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        """The configuration, loaded on first use (so ``--help`` works with a broken file)."""
        if self._runtime is None:
            # Imported on first use, like the commands: --version and --help read no config.
            from eddymail.services import runtime

            self._runtime = runtime.start(self.config_path, self.verbose)
        return self._runtime

    def close(self) -> None:
        """Close the runtime (and its database) if this run started one."""
        if self._runtime is not None:
            self._runtime.close()

    def database(self) -> Runtime:
        """The runtime with its database open (created or upgraded if needed)."""
        self.runtime.open_database()
        return self.runtime

    def actor(self) -> Actor:
        """Who acts in this command: ``--as``, else ``$EDDYMAIL_AGENT``, else the config's
        ``[agent] name``; checked against the agent list."""
        from eddymail.services import agents  # not for --help and the commands that never act

        if self.acting_as:
            return agents.acting_agent(self.acting_as, source="--as")
        identity, source = self.runtime.config.agent_identity
        return agents.acting_agent(identity or None, source=source or "--as")


class LazyGroup(click.Group):
    """A group whose subcommands named in ``lazy_commands`` are imported only when used.

    ("name" -> "module:attribute"). Cron's ``fetch`` or a quick ``ticket list`` should not
    pay at start-up for importing every other command's dependencies. ``lazy_summaries``
    ("name" -> the first paragraph of the command's help) lets ``--help`` list the commands
    without importing them all.
    """

    def __init__(self, *args: Any, lazy_commands: dict[str, str] | None = None,
                 lazy_summaries: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})
        self.lazy_summaries = dict(lazy_summaries or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands and name not in self.commands:
            module_name, attribute = self.lazy_commands[name].split(":")
            module = importlib.import_module(module_name)
            self.add_command(getattr(module, attribute), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The "Commands" section of ``--help``, as click writes it, importing only the
        commands that have no summary here."""
        listed = []
        for name in self.list_commands(ctx):
            command = self._summary_of(name) or self.get_command(ctx, name)
            if command is not None and not command.hidden:
                listed.append((name, command))
        if listed:
            limit = formatter.width - 6 - max(len(name) for name, _ in listed)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit))
                                    for name, command in listed])

    def _summary_of(self, name: str) -> click.Command | None:
        """A stand-in carrying the summary of a command not imported yet (click shortens
        it for the list exactly as it would the command's own help)."""
        if name in self.commands or name not in self.lazy_summaries:
            return None
        return click.Command(name, help=self.lazy_summaries[name])


class EddymailGroup(LazyGroup):
    """The root group: its invocation is the error boundary for every command below it.

    ``one_database_per_process`` is set by ``main()``, the console script: such a process
    opens only the database its configuration names, so the database library can be
    imported for that engine alone before the command is (``eddymail.db.drivers``).
    """

    one_database_per_process = False

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[
            str | None, click.Command | None, list[str]]:
        found = super().resolve_command(ctx, args)
        if self.one_database_per_process and not gc.isenabled():
            # main() paused the collector while the command and its libraries were imported.
            # Those objects live until the process ends: frozen, no later collection walks
            # them (a fetch of thousands of messages collects often); the garbage the
            # command itself makes is collected as usual.
            gc.freeze()
            gc.enable()
        return found

    def invoke(self, ctx: click.Context) -> Any:
        try:
            if self.one_database_per_process:
                from eddymail.services import runtime

                runtime.prepare_database_library(ctx.params.get("config_path"))
            return super().invoke(ctx)
        except EddymailError as error:
            _report(ctx, error)
        except click.ClickException as error:
            # click prints its own messages raw, and some quote what was typed (a file
            # name given to -F): shown, like everything else, with controls spelled out.
            # click declares ``message`` Final, but replacing it in place is the only way to
            # keep the exception's own class (usage hint, exit code 2) and format.
            error.message = for_terminal(error.message, multiline=False)  # type: ignore[misc]
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            _output_of(ctx).error("Interrupted.")
            ctx.exit(130)
        except Exception as error:
            if isinstance(error, BrokenPipeError) and _reader_left():
                _quit_quietly(ctx)
            import logging
            import traceback

            from eddymail.secrets import carried_by, scrub
            from eddymail.services.runtime import expected_error

            expected = expected_error(error)
            if expected is not None:  # e.g. the database locked under a statement
                _report(ctx, expected)
            output = _output_of(ctx)
            logging.getLogger("eddymail").debug("unexpected error", exc_info=True)
            # A library's message may quote its arguments, a password among them: the one
            # in use where the error was raised travels with it.
            known = carried_by(error)
            output.error(
                scrub(f"Unexpected {type(error).__name__}: {error}", known),
                "This is a bug in eddymail; run again with -v for the traceback and report it.",
            )
            if output.verbose:
                output.traceback(scrub(traceback.format_exc(), known))
            ctx.exit(EXIT_FAILED)
        finally:
            state = ctx.find_object(AppState)
            if state is not None:
                state.close()


def _quit_quietly(ctx: click.Context) -> NoReturn:
    """End a command whose reader left (`eddymail ticket export | head` had enough).

    Nothing to say on stderr; stdout now goes nowhere, so the exit's own flush of what is
    still buffered cannot fail a second time.
    """
    import os
    import sys

    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    ctx.exit(EXIT_FAILED)


def _reader_left() -> bool:
    """Whether stdout is a pipe whose reader has closed it (``head`` had enough)."""
    import select
    import sys

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # POLLERR is reported whatever is asked
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll(), or no real stdout (a test's)
        return False


def _report(ctx: click.Context, error: EddymailError) -> NoReturn:
    """Print an expected failure on stderr and exit with its code."""
    output = _output_of(ctx)
    # An overlapping cron run stays silent under -q; an empty message means the
    # command already reported the failures itself, one line each.
    if error.message and not (isinstance(error, LockBusyError) and output.quiet):
        output.error(error.message, error.hint)
    ctx.exit(error.exit_code)


def _output_of(ctx: click.Context) -> Output:
    state = ctx.find_object(AppState)
    return state.output if state else Output()


def state() -> AppState:
    """The current invocation's state."""
    return click.get_current_context().ensure_object(AppState)


def json_option(function: F) -> F:
    """``--json`` on a data command (it may also be given before the subcommand)."""

    def enable(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value:
            ctx.ensure_object(AppState).output.json_mode = True

    return click.option(
        "--json",
        "json_mode",
        is_flag=True,
        expose_value=False,
        callback=enable,
        is_eager=True,
        help="Print one JSON document on stdout.",
    )(function)


def agent_option(function: F) -> F:
    """``--as HANDLE`` on a command that acts on tickets (it may also come before it)."""

    def remember(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
        if value:
            ctx.ensure_object(AppState).acting_as = value

    return click.option(
        "--as", "acting_as", metavar="AGENT", expose_value=False, callback=remember,
        is_eager=True, help="Act as this agent (default: $EDDYMAIL_AGENT, then the config).",
    )(function)


def with_database(function: F) -> F:
    """Open the database before the command runs."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        state().database()
        return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@click.group(cls=EddymailGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Configuration file (default: $EDDYMAIL_CONFIG, then the platform config dir).",
)
@click.option("--json", "json_mode", is_flag=True, help="Print one JSON document on stdout.")
@click.option("--as", "acting_as", metavar="AGENT",
              help="Act as this agent (default: $EDDYMAIL_AGENT, then [agent] name).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing on success (for cron).")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-vv: debug).")
@click.version_option(__version__, "--version", prog_name="eddymail")
@click.pass_context
def cli(
    ctx: click.Context, config_path: str | None, json_mode: bool, acting_as: str | None,
    quiet: bool, verbose: int,
) -> None:
    """eddymail: a mail-to-ticket helpdesk for the terminal.

    Mailboxes ("channels") belong to departments; `eddymail fetch`, run from cron,
    turns their mail into tickets that staff read and answer here.

    \b
    Examples:
      eddymail department add Support
      eddymail channel add support --department Support --email help@example.com
      eddymail channel test --all
      eddymail -q fetch
    """
    existing = ctx.find_object(AppState)
    output = Output(
        json_mode=json_mode or bool(existing and existing.output.json_mode),
        quiet=quiet,
        verbose=verbose,
    )
    ctx.obj = AppState(config_path=config_path, output=output, verbose=verbose,
                       acting_as=acting_as or (existing.acting_as if existing else None))
