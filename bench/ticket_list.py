"""How fast ``eddymail ticket list`` answers on a big database, next to ``eddymail --version``.

Run from the repository root::

    .venv/bin/python bench/ticket_list.py [--tickets N] [--runs N] [--profile] [--keep DIR]
    .venv/bin/python bench/ticket_list.py --keep DIR --reuse   # DIR's database, if built

It creates a fresh SQLite database in a temporary directory with
``eddymail.db.connection.open_database``
(so the real migrations make the schema), fills it with 100,000 tickets and 300,000 messages
(three per ticket, ~500 bytes of text each, five departments, 20,000 requesters, mostly closed
older tickets and open/pending recent ones) and prints:

* the seeding time;
* the ``EXPLAIN QUERY PLAN`` of every SELECT that ``ticket list`` (first page) and
  ``ticket list --department D`` / ``--status all`` run, recorded from the real command run
  in-process, with a warning on any full scan, temporary B-tree or scan of ``message``;
* the wall time (median and minimum of ``--runs`` child processes, start-up included, after one
  warm-up) of ``eddymail --version``, ``ticket list``, ``ticket list --department D``,
  ``ticket list --status all`` and ``--json ticket list``, with each one's ratio to
  ``--version``. Target: listing costs less than 2 x the start-up;
* the same for ``ticket show`` and ``--json ticket show`` of one more ticket whose thread has
  1,000 messages (``--long-ticket``). Target: less than 3 x the start-up (issue 14).

Last, it closes all but 20 tickets and times the default view again: the worst case for its
``status != 'closed'`` filter. ``--profile`` adds the import time of the heaviest modules
(``python -X importtime``) and a cProfile of one in-process ``ticket list``. The database is
not ``ANALYZE``d, like a database that grew through ``fetch``. This is a script that prints
figures, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import os
import pstats
import random
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import peewee
from childprocess import compile_package, load_average

from eddymail.db.connection import close_database, open_database
from eddymail.db.models import Agent, Channel, Department, Message, Ticket, User
from eddymail.services.tickets.queries import list_tickets

BATCH = 5000
TARGET_RATIO = 2.0
SHOW_TARGET_RATIO = 3.0  # ticket show of a long thread (issue 14)
DEPARTMENTS = ("Support", "Billing", "Sales", "Technical", "Accounts")
STAFF = ("alice", "boris", "chen", "dmitry", "elena", "farid")
FIRST_NAMES = ("Anna", "Ivan", "Maria", "Olga", "Pavel", "John", "Sofia", "Lena", "Omar", "Kim",
               "Yuri", "Nina", "Peter", "Irina", "Sergey", "Laura", "Tom", "Vera", "Artem", "Mia")
LAST_NAMES = ("Ivanova", "Petrov", "Smith", "Kuznetsova", "Garcia", "Sokolov", "Novak", "Brown",
              "Volkova", "Lee", "Morozov", "Jensen", "Popova", "Rossi", "Lebedev", "Weber")
DOMAINS = ("example.com", "mail.example.ru", "corp.example.org", "shop.example.net",
           "yandex.example", "inbox.example.ru")
SUBJECTS = (
    "Cannot log in to my account", "Invoice {n} is wrong", "Printer on floor {n} is jammed",
    "Refund for order #{n}", "Не приходит письмо с паролем", "Счёт {n}: вопрос по оплате",
    "VPN drops every {n} minutes", "Request for a quote ({n} licences)",
    "Password reset link expired", "Website shows error {n}", "Change of billing address",
    "Доступ к почтовому ящику", "Upgrade plan for team of {n}", "Mailbox full again",
    "Cannot attach files larger than {n} MB", "Как подключить принтер?",
)
SENTENCES = (
    "Hello, since Monday I cannot open the customer portal from the office network.",
    "The error message says that my session expired, even right after I log in again.",
    "We were charged twice for the last month, please check the attached invoice.",
    "Could you send me a quote for the additional licences we discussed on the phone?",
    "Здравствуйте, после обновления перестала приходить почта на общий ящик отдела.",
    "Пожалуйста, проверьте счёт за прошлый месяц: сумма не совпадает с договором.",
    "I tried clearing the cache and another browser, the problem stays the same.",
    "The printer in the meeting room shows a paper jam but there is no paper inside.",
    "Our accountant needs the closing documents by Friday for the quarterly report.",
    "Thank you for the quick answer, it works now, but one question is still open.",
    "Can you also move the old tickets of our team to the new department, please?",
    "Спасибо за быстрый ответ, но проблема повторилась сегодня утром около девяти.",
    "The VPN client disconnects every few minutes when I work from home over LTE.",
)
REPLIES = (
    "Thank you for your message. We have checked your account and fixed the settings.",
    "Добрый день! Мы проверили ваш запрос и исправили настройки почтового ящика.",
    "We are looking into it and will come back to you within one business day.",
    "Could you send us a screenshot of the error and the time it happened?",
)
SIGNATURE = "\n\n--\nBest regards,\n{name}\n"


# --- seeding -----------------------------------------------------------------------------------


def body_text(rng: random.Random, pool: Sequence[str], size: int = 500) -> str:
    """About ``size`` bytes of mail text: a few sentences from ``pool``."""
    parts: list[str] = []
    total = 0
    while total < size - 60:
        sentence = rng.choice(pool)
        parts.append(sentence)
        total += len(sentence.encode()) + 1
    return " ".join(parts)


def default_value(model_field: peewee.Field) -> Any:
    """What peewee would store for a field the seeder does not fill."""
    default = model_field.default
    value = default() if callable(default) else default
    return model_field.db_value(value) if value is not None else None


def insert_rows(database: peewee.Database, model: type[peewee.Model], names: Sequence[str],
                rows: Iterable[Sequence[Any]]) -> int:
    """Bulk-insert rows (values for ``names``) with executemany, BATCH rows per transaction.

    Every other column of the current model gets its peewee default, so the seeder keeps
    working when a migration adds a column with a default.
    """
    fields = model._meta.fields
    extra = [f for f in model._meta.sorted_fields
             if f.name not in names and not isinstance(f, peewee.AutoField)]
    columns = [fields[name] for name in names] + extra
    defaults = tuple(default_value(f) for f in extra)
    # peewee writes the statement (quoting, column names); executemany repeats it fast.
    sql, _ = model.insert_many([(None,) * len(columns)], fields=columns).sql()
    connection = database.connection()
    count = 0
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append((*row, *defaults))
        if len(batch) >= BATCH:
            with database.atomic():
                connection.executemany(sql, batch)
            count += len(batch)
            batch = []
    if batch:
        with database.atomic():
            connection.executemany(sql, batch)
        count += len(batch)
    return count


def stamp(moment: datetime) -> str:
    """A naive UTC time the way peewee stores it in SQLite."""
    return str(moment)


@dataclass
class Seeded:
    """What the seeder made, for the figures."""

    tickets: int = 0
    messages: int = 0
    users: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    size_mib: float = 0.0


def seed(database: peewee.Database, tickets: int, users: int, rng: random.Random) -> Seeded:
    """Fill the database: departments, one channel each, users, tickets, three messages each."""
    result = Seeded()
    started = time.perf_counter()
    now = datetime(2026, 11, 27, 12, 0, 0)
    span = timedelta(days=730)
    department_ids = list(range(1, len(DEPARTMENTS) + 1))
    insert_rows(database, Department, ("id", "name", "created_at"),
                ((i, name, stamp(now - span)) for i, name in zip(department_ids, DEPARTMENTS,
                                                                 strict=True)))
    insert_rows(database, Channel, ("id", "name", "department", "email", "protocol"),
                ((i, name.lower(), i, f"{name.lower()}@helpdesk.example", "imap")
                 for i, name in zip(department_ids, DEPARTMENTS, strict=True)))
    people = []
    for number in range(1, users + 1):
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        address = f"{name.split()[0].lower()}.{number}@{rng.choice(DOMAINS)}"
        people.append((number, address, name, stamp(now - span)))
    result.users = insert_rows(database, User, ("id", "email", "name", "created_at"), people)
    insert_rows(database, Agent, ("id", "handle", "name", "created_at", "updated_at"),
                ((i, handle, handle.title(), stamp(now - span), stamp(now - span))
                 for i, handle in enumerate(STAFF, start=1)))

    ticket_rows = []
    message_rows = []
    for number in range(1, tickets + 1):
        # Tickets arrive over two years, roughly in id order; activity follows within days.
        created = now - span + span * (number / tickets) - timedelta(
            minutes=rng.randint(0, 600))
        gaps = sorted(rng.uniform(0, 5) for _ in range(2))
        times = [created, created + timedelta(days=gaps[0]), created + timedelta(days=gaps[1])]
        last = min(times[-1], now)
        age = (now - created).days
        if age < 14:
            status = rng.choices(("open", "pending", "closed"), (50, 30, 20))[0]
        else:
            status = rng.choices(("open", "pending", "closed"), (3, 4, 93))[0]
        result.statuses[status] = result.statuses.get(status, 0) + 1
        department = rng.choice(department_ids)
        user_id, address, name, _ = people[rng.randrange(users)]
        subject = rng.choice(SUBJECTS).format(n=rng.randint(2, 9999))
        awaiting = status == "open" or rng.random() < 0.3
        assignee = rng.randrange(len(STAFF)) if rng.random() < 0.6 else None
        ticket_rows.append((number, subject, status, department, user_id, address,
                            None if assignee is None else assignee + 1,
                            department, awaiting, 3, stamp(created), stamp(last)))
        staff = STAFF[assignee] if assignee is not None else rng.choice(STAFF)
        directions = ("in", "out", "in" if awaiting else "out")
        for position, direction in enumerate(directions):
            inbound = direction == "in"
            message_rows.append((
                number, direction, department, user_id if inbound else None,
                "" if inbound else staff.title(),
                address if inbound else f"{DEPARTMENTS[department - 1].lower()}@helpdesk.example",
                name if inbound else staff.title(),
                json.dumps([{"address": "help@helpdesk.example", "name": ""}]),
                subject if position == 0 else f"Re: [#{number}] {subject}",
                body_text(rng, SENTENCES if inbound else REPLIES)
                + SIGNATURE.format(name=name if inbound else staff.title()),
                stamp(times[position]),
                f"<{number}.{position}.{rng.getrandbits(48):x}@bench.example>",
                stamp(times[position]),
            ))
    result.tickets = insert_rows(
        database, Ticket,
        ("id", "subject", "status", "department", "requester", "requester_address", "assignee",
         "channel", "awaiting_reply", "message_count", "created_at", "last_activity_at"),
        ticket_rows)
    result.messages = insert_rows(
        database, Message,
        ("ticket", "direction", "channel", "user", "author_name", "from_address", "from_name",
         "to", "subject", "body_text", "sent_at", "message_id", "created_at"),
        message_rows)
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    result.seconds = time.perf_counter() - started
    return result


def seed_long_ticket(database: peewee.Database, ticket_id: int, messages: int,
                     rng: random.Random) -> int:
    """One more ticket, number ``ticket_id``, whose thread has ``messages`` messages: a
    customer and an agent writing in turns for two years. Returns its number."""
    started = datetime(2024, 11, 27, 9, 0, 0)
    address, name = "anna.long@example.com", "Anna Long"
    user_id = User.select(peewee.fn.MAX(User.id)).scalar() + 1
    insert_rows(database, User, ("id", "email", "name", "created_at"),
                [(user_id, address, name, stamp(started))])
    subject = "The printer jams every week"
    insert_rows(database, Ticket,
                ("id", "subject", "status", "department", "requester", "requester_address",
                 "channel", "awaiting_reply", "message_count", "created_at", "last_activity_at"),
                [(ticket_id, subject, "open", 1, user_id, address, 1, True, messages,
                  stamp(started), stamp(started + timedelta(hours=17 * messages)))])
    rows = []
    for position in range(messages):
        inbound = position % 2 == 0
        moment = started + timedelta(hours=17 * position)
        rows.append((
            ticket_id, "in" if inbound else "out", 1, user_id if inbound else None,
            "" if inbound else "Alice", address if inbound else "support@helpdesk.example",
            name if inbound else "Alice",
            json.dumps([{"address": "support@helpdesk.example", "name": ""}]),
            subject if position == 0 else f"Re: [#{ticket_id}] {subject}",
            body_text(rng, SENTENCES if inbound else REPLIES)
            + SIGNATURE.format(name=name if inbound else "Alice"),
            stamp(moment), f"<long.{position}.{rng.getrandbits(48):x}@bench.example>",
            stamp(moment),
        ))
    insert_rows(database, Message,
                ("ticket", "direction", "channel", "user", "author_name", "from_address",
                 "from_name", "to", "subject", "body_text", "sent_at", "message_id",
                 "created_at"), rows)
    database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return ticket_id


# --- query plans -------------------------------------------------------------------------------


@contextlib.contextmanager
def recording_sql() -> Iterator[list[tuple[str, tuple[Any, ...]]]]:
    """Record every statement peewee sends, from any database object opened meanwhile."""
    recorded: list[tuple[str, tuple[Any, ...]]] = []
    original = peewee.Database.execute_sql

    def execute_sql(self: peewee.Database, sql: str, params: Any = None, *args: Any,
                    **kwargs: Any) -> Any:
        recorded.append((sql, tuple(params or ())))
        return original(self, sql, params, *args, **kwargs)

    with mock.patch.object(peewee.Database, "execute_sql", execute_sql):
        yield recorded


def command_statements(arguments: Sequence[str]) -> list[tuple[str, tuple[Any, ...]]]:
    """The SQL the real command runs, recorded from an in-process run of the CLI."""
    from click.testing import CliRunner

    from eddymail.cli import cli

    with recording_sql() as recorded:
        result = CliRunner().invoke(cli, list(arguments), catch_exceptions=False)
    if result.exit_code != 0:
        raise RuntimeError(f"eddymail {' '.join(arguments)} exited {result.exit_code}: "
                           f"{result.output}")
    return recorded


def query_plan(database: peewee.Database, sql: str, params: Sequence[Any]) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN of one statement, one line per step."""
    cursor = database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", tuple(params))
    return [row[3] for row in cursor.fetchall()]


# Tables that grow with the mail; a scan of one of them is what the first page must avoid.
BIG_TABLES = {"ticket", "message", "user", "raw_message", "attachment", "ledger_entry"}
FULL_SCAN = re.compile(r"^SCAN (\S+)(?! USING (COVERING )?INDEX)")


def plan_warnings(sql: str, plan: Sequence[str]) -> list[str]:
    """Plan lines that would read a big table whole or sort it: full scans, temporary B-trees
    in a statement on a big table, and any access to ``message``."""
    aliases = {alias: table for table, alias in re.findall(r'"(\w+)" AS "(\w+)"', sql)}
    tables = set(aliases.values()) | set(re.findall(r'FROM "(\w+)"', sql))
    warnings = []
    for line in plan:
        scan = FULL_SCAN.match(line)
        scanned = aliases.get(scan.group(1), scan.group(1)) if scan else None
        named = {aliases.get(word, word) for word in re.findall(r"\w+", line)}
        if (scanned in BIG_TABLES or "message" in named
                or ("TEMP B-TREE" in line and tables & BIG_TABLES)):
            warnings.append(line)
    return warnings


def print_plans(database: peewee.Database, label: str, arguments: Sequence[str]) -> list[str]:
    """Print the plan of every SELECT the command runs; return the lines that are a problem."""
    print(f"\n{label}: eddymail {' '.join(arguments)}")
    warnings = []
    for sql, params in command_statements(arguments):
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        print(f"  SQL: {sql}")
        print(f"       params {params!r}")
        plan = query_plan(database, sql, params)
        bad = plan_warnings(sql, plan)
        for line in plan:
            print(f"    {'!!' if line in bad else '  '} {line}")
        warnings += [f"{label}: {line}" for line in bad]
    return warnings


# --- timing ------------------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall and CPU times of one command run as a child process."""

    label: str
    arguments: tuple[str, ...]
    seconds: list[float]
    cpu: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_cpu(self) -> float:
        """CPU time (user + system): the figure a busy machine disturbs least."""
        return statistics.median(self.cpu)

    @property
    def best(self) -> float:
        return min(self.seconds)


def child_environment(directory: Path, database: Path) -> dict[str, str]:
    """An isolated environment: the bench database, HOME and XDG directories in the temp dir."""
    # Bytecode may be written, as an installed eddymail has it (else every run compiles).
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("EDDYMAIL_") and key != "PYTHONDONTWRITEBYTECODE"}
    home = directory / "home"
    environment.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        XDG_CACHE_HOME=str(home / ".cache"),
        EDDYMAIL_DATABASE_URL=f"sqlite:///{database}",
        COLUMNS="160",
    )
    return environment


def run_once(arguments: Sequence[str], environment: dict[str, str],
             directory: Path) -> tuple[float, float]:
    """Wall and CPU time of one ``python -m eddymail ARGS`` child process; raises if it fails."""
    command = [sys.executable, "-m", "eddymail", *arguments]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(command, env=environment, cwd=directory, capture_output=True,
                               check=False)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if completed.returncode != 0 or not completed.stdout:
        raise RuntimeError(f"{' '.join(command)} exited {completed.returncode}: "
                           f"{completed.stderr.decode(errors='replace')}")
    return elapsed, cpu


def time_commands(cases: Sequence[tuple[str, tuple[str, ...]]], environment: dict[str, str],
                  directory: Path, runs: int) -> list[Timing]:
    """One warm-up round, then ``runs`` rounds over all commands.

    Rounds interleave the commands, so a burst of load on the machine (other builds, tests)
    slows every command of that round alike instead of one command's whole series.
    """
    timings = [Timing(label, arguments, []) for label, arguments in cases]
    for round_number in range(runs + 1):
        for timing in timings:
            elapsed, cpu = run_once(timing.arguments, environment, directory)
            if round_number:  # round 0 only warms the page cache and the .pyc files
                timing.seconds.append(elapsed)
                timing.cpu.append(cpu)
    return timings


def time_in_process(arguments: dict[str, Any], repeats: int = 20) -> float:
    """Best time of ``list_tickets(**arguments)`` in this process: the query and the rows only."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        list_tickets(**arguments)
        best = min(best, time.perf_counter() - started)
    return best


# --- profiling ---------------------------------------------------------------------------------


def print_import_times(environment: dict[str, str], directory: Path, top: int = 15) -> None:
    """The modules with the largest cumulative import time in ``eddymail ticket list``."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "eddymail", "ticket", "list"],
        env=environment, cwd=directory, capture_output=True, text=True, check=True)
    rows = []
    for line in completed.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            rows.append((int(match.group(2)), len(match.group(3)), match.group(4)))
    total = sum(cumulative for cumulative, indent, _ in rows if indent == 1)
    print(f"\nImports of `ticket list`: {total / 1e6:.3f} s in total; heaviest (cumulative):")
    for cumulative, indent, name in sorted(rows, reverse=True)[:top]:
        print(f"  {cumulative / 1e3:8.1f} ms  {'  ' * (indent // 2 - 1)}{name}")


def print_profile(arguments: Sequence[str], top: int = 15) -> None:
    """cProfile of one in-process run (imports already done), by cumulative time."""
    from click.testing import CliRunner

    from eddymail.cli import cli

    profile = cProfile.Profile()
    runner = CliRunner()
    profile.enable()
    runner.invoke(cli, list(arguments), catch_exceptions=False)
    profile.disable()
    report = io.StringIO()
    pstats.Stats(profile, stream=report).sort_stats("cumulative").print_stats(top)
    print(f"\ncProfile of one in-process `eddymail {' '.join(arguments)}` (imports excluded):")
    print("\n".join("  " + line for line in report.getvalue().strip().splitlines()[:top + 8]))


# --- the worst case for the default view ------------------------------------------------------


def few_active(database_path: Path, department: str, environment: dict[str, str],
               directory: Path, runs: int, active: int = 20) -> None:
    """Close all but ``active`` tickets and time the default view again.

    The default filter (``status != 'closed'``) walks the ``last_activity_at`` index until it
    has a page of active tickets; in a helpdesk with almost nothing open that is every ticket.
    Runs last because it changes the database.
    """
    database = open_database(f"sqlite:///{database_path}")
    newest = Ticket.select(Ticket.id).order_by(Ticket.id.desc()).limit(active)
    with database.atomic():
        Ticket.update(status="closed").where(Ticket.id.not_in(newest)).execute()
        Ticket.update(status="open").where(Ticket.id.in_(newest)).execute()
    print(f"\nWorst case for the default view: only {active} of {Ticket.select().count():,} "
          "tickets not closed")
    for label, filters in (("first page", {}), ("one department", {"department": department})):
        print(f"  list_tickets() {label:<16} {time_in_process(filters) * 1000:7.2f} ms "
              "(best of 20, in process)")
    close_database()
    timings = time_commands([("--version", ("--version",)), ("ticket list", ("ticket", "list"))],
                            environment, directory, runs)
    print(f"  child processes, median of {runs}: --version {timings[0].median * 1000:.0f} ms, "
          f"ticket list {timings[1].median * 1000:.0f} ms "
          f"({timings[1].median / timings[0].median:.2f}x; CPU "
          f"{timings[1].median_cpu / timings[0].median_cpu:.2f}x)")


# --- main --------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=7, help="timed runs per command")
    parser.add_argument("--long-ticket", type=int, default=1000,
                        help="messages in the thread that ticket show is timed on")
    parser.add_argument("--profile", action="store_true", help="import times and cProfile")
    parser.add_argument("--keep", type=Path, help="build the database in DIR and keep it")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: use the database already built in DIR (same "
                             "--tickets and --long-ticket) instead of seeding a new one")
    options = parser.parse_args(argv)
    if options.reuse and not options.keep:
        parser.error("--reuse needs --keep DIR")

    if options.keep:
        options.keep.mkdir(parents=True, exist_ok=True)
        directory = options.keep
        cleanup: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
    else:
        cleanup = tempfile.TemporaryDirectory(prefix="eddymail-bench-")
        directory = Path(cleanup.name)  # type: ignore[attr-defined]
    with cleanup:
        database_path = directory / "bench.db"
        reuse = options.reuse and database_path.exists()
        if not reuse:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{database_path}{suffix}").unlink(missing_ok=True)
        environment = child_environment(directory, database_path)
        compile_package(Path(__file__).resolve().parent.parent / "eddymail")
        for key in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
            Path(environment[key]).mkdir(parents=True, exist_ok=True)
        # The in-process CLI runs (plans, profile) must see the same database and no config.
        os.environ.update({key: environment[key] for key in (
            "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME",
            "EDDYMAIL_DATABASE_URL")})
        os.environ.pop("EDDYMAIL_CONFIG", None)

        database = open_database(f"sqlite:///{database_path}")
        print(f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, "
              f"peewee {peewee.__version__}")
        long_ticket = options.tickets + 1
        if reuse:
            print(f"Reusing {database_path}: {Ticket.select().count():,} tickets, "
                  f"{Message.select().count():,} messages")
        else:
            seeded = seed(database, options.tickets, options.users, random.Random(20261127))
            seed_long_ticket(database, long_ticket, options.long_ticket, random.Random(1000))
            seeded.size_mib = sum(p.stat().st_size
                                  for p in directory.glob("bench.db*")) / 2**20
            print(f"Seeded {seeded.tickets:,} tickets, {seeded.messages:,} messages, "
                  f"{seeded.users:,} users, {len(DEPARTMENTS)} departments in "
                  f"{seeded.seconds:.1f} s; database {seeded.size_mib:.0f} MiB")
            print("Statuses: " + ", ".join(f"{k} {v:,}"
                                           for k, v in sorted(seeded.statuses.items())))
        print(f"Ticket #{long_ticket}: one thread of "
              f"{Message.select().where(Message.ticket == long_ticket).count():,} messages")
        close_database()

        department = DEPARTMENTS[1]
        cases = [
            ("(b) first page", ("ticket", "list")),
            ("(c) one department", ("ticket", "list", "--department", department)),
            ("(d) all statuses", ("ticket", "list", "--status", "all")),
            ("(e) first page, JSON", ("--json", "ticket", "list")),
        ]
        shows = [
            (f"(f) {options.long_ticket} messages", ("ticket", "show", str(long_ticket))),
            (f"(g) {options.long_ticket} messages, JSON",
             ("--json", "ticket", "show", str(long_ticket))),
        ]
        print("\nQuery plans (!! marks a full scan or a sort of a big table, or any use of message;"
              " scans of small tables such as department are fine)")
        database = open_database(f"sqlite:///{database_path}")
        warnings: list[str] = []
        for label, arguments in cases[:3]:
            warnings += print_plans(database, label, arguments)
        close_database()

        print("\nlist_tickets() in this process (query and row objects, no start-up), best of 20:")
        database = open_database(f"sqlite:///{database_path}")
        for label, filters in (("first page", {}), ("one department", {"department": department}),
                               ("all statuses", {"status": "all"})):
            print(f"  {label:<16} {time_in_process(filters) * 1000:7.2f} ms")
        close_database()

        print(f"\nWall time of child processes, {options.runs} interleaved rounds after one "
              f"warm-up (targets: ticket list < {TARGET_RATIO:g} x --version, ticket show "
              f"< {SHOW_TARGET_RATIO:g} x)")
        timings = time_commands([("(a) --version", ("--version",)), *cases, *shows],
                                environment, directory, options.runs)
        version = timings[0]
        print(f"  {'command':<66} {'median':>8} {'min':>8} {'ratio':>6} {'CPU':>7} "
              f"{'ratio':>6}  verdict (by CPU)")
        missed = []
        for timing in timings:
            ratio = timing.median / version.median
            cpu_ratio = timing.median_cpu / version.median_cpu
            target = SHOW_TARGET_RATIO if timing.arguments[-2:-1] == ("show",) else TARGET_RATIO
            verdict = "" if timing is version else (
                "ok" if cpu_ratio < target else "MISSED")
            if verdict == "MISSED":
                missed.append(timing.label)
            command = f"{timing.label}: eddymail {' '.join(timing.arguments)}"
            print(f"  {command:<66} {timing.median * 1000:6.0f}ms {timing.best * 1000:6.0f}ms "
                  f"{ratio:5.2f}x {timing.median_cpu * 1000:5.0f}ms {cpu_ratio:5.2f}x  {verdict}")
        print("  (ratios: median over the median of --version, of wall time, then of CPU time; "
              f"the verdict goes by CPU time, which a busy machine disturbs least; "
              f"{load_average()})")

        if warnings:
            print("\nPlan warnings:")
            for warning in warnings:
                print(f"  {warning}")
        print(f"\nTarget {'missed by: ' + ', '.join(missed) if missed else 'met'}; "
              f"{len(warnings)} plan warning(s).")
        if options.profile or missed:
            print_import_times(environment, directory)
            print_profile(("ticket", "list"))
        if options.keep:  # the worst case changes the database: it gets a copy
            worst = directory / "worst-case.db"
            shutil.copyfile(database_path, worst)
            few_active(worst, department, child_environment(directory, worst), directory,
                       options.runs)
            worst.unlink()
        else:
            few_active(database_path, department, environment, directory, options.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
