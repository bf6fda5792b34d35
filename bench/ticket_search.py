"""How fast ``ticket list --search`` answers on a big database, and what a rebuild costs.

Run from the repository root::

    .venv/bin/python bench/ticket_search.py [--tickets N] [--repeats N] [--runs N] [--keep DIR]
    .venv/bin/python bench/ticket_search.py --keep DIR --reuse   # DIR's indexed database

It seeds a fresh SQLite database the way ``bench/ticket_list.py`` does (100,000 tickets,
300,000 messages of ~500 bytes, Russian and English), indexes every message with the real
``search rebuild`` service (timed: messages per second), then prints the median in-process
time of ``list_tickets(search=...)`` (first page of 50, snippets included) for queries from
rare to very common, with how many tickets each matches, and the ``EXPLAIN QUERY PLAN`` of
the search. Last, the wall time of ``eddymail ticket list --search`` in child processes
(start-up included) against ``eddymail --version``; target of issue 14: under 3 x. This is a
script that prints figures, not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from childprocess import compile_package, load_average

from eddymail.db.connection import close_database, open_database
from eddymail.services.tickets import search
from eddymail.services.tickets.queries import list_tickets

QUERIES = (
    ("rare word", "LTE"),
    ("one name", "ivanova"),
    ("Cyrillic, any case", "ПРИНТЕР"),
    ("ё written as е", "счет"),
    ("two words", "printer jam"),
    ("phrase", '"paper jam"'),
    ("prefix", "licen*"),
    ("very common word", "the"),
    ("nothing matches", "zanzibar"),
)

# The ``ticket list --search`` runs timed as child processes, from rare to very common.
CHILD_QUERIES = (("rare word", "LTE"), ("two words", "printer jam"), ("Cyrillic", "ПРИНТЕР"),
                 ("very common word", "the"))
TARGET_RATIO = 3.0


def _ticket_list_bench():  # the seeder of bench/ticket_list.py, shared rather than copied
    path = Path(__file__).with_name("ticket_list.py")
    spec = importlib.util.spec_from_file_location("bench_ticket_list", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def timed(function, repeats: int) -> tuple[float, object]:
    result = function()  # warm-up (page cache, prepared statements)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def child_processes(seeder, directory: Path, database_path: Path, runs: int) -> None:
    """``eddymail ticket list --search`` as a person runs it, against ``eddymail --version``."""
    environment = seeder.child_environment(directory, database_path)
    for key in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        Path(environment[key]).mkdir(parents=True, exist_ok=True)
    cases = [("--version", ("--version",))] + [
        (label, ("ticket", "list", "--search", text)) for label, text in CHILD_QUERIES]
    print(f"\nwall time of child processes, median of {runs} interleaved rounds after a "
          f"warm-up (target: ticket list --search < {TARGET_RATIO:g} x --version); "
          f"{load_average()}")
    compile_package(Path(__file__).resolve().parent.parent / "eddymail")
    timings = seeder.time_commands(cases, environment, directory, runs)
    version = timings[0]
    for timing in timings:
        ratio = timing.median / version.median
        cpu_ratio = timing.median_cpu / version.median_cpu
        verdict = "" if timing is version else ("ok" if cpu_ratio < TARGET_RATIO else "MISSED")
        print(f"  eddymail {' '.join(timing.arguments):<42} wall {timing.median * 1000:6.0f} ms "
              f"{ratio:5.2f}x, CPU {timing.median_cpu * 1000:5.0f} ms {cpu_ratio:5.2f}x  "
              f"{verdict}")
    print("  (the verdict goes by CPU time, which a busy machine disturbs least)")
    print(f"  {load_average()} at the end")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--runs", type=int, default=7,
                        help="child processes per command for the start-up ratio")
    parser.add_argument("--keep", type=Path, help="build the database in DIR and keep it")
    parser.add_argument("--reuse", action="store_true",
                        help="with --keep: use the database seeded and indexed in DIR before "
                             "(same --tickets) instead of building a new one")
    arguments = parser.parse_args()
    if arguments.reuse and not arguments.keep:
        parser.error("--reuse needs --keep DIR")
    seeder = _ticket_list_bench()
    directory = arguments.keep or Path(tempfile.mkdtemp(prefix="eddymail-search-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    database_path = directory / "eddymail.db"
    # Only a database whose rebuild finished is reused (the mark is written after it).
    built_mark = directory / "indexed.txt"
    reuse = arguments.reuse and built_mark.exists()
    if not reuse:
        built_mark.unlink(missing_ok=True)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database_path}{suffix}").unlink(missing_ok=True)
    database = open_database(f"sqlite:///{database_path}")
    try:
        if reuse:
            print(f"reusing {database_path} ({built_mark.read_text().strip()})")
        else:
            seeded = seeder.seed(database, arguments.tickets, arguments.users,
                                 random.Random(15))
            print(f"seeded {seeded.tickets} tickets, {seeded.messages} messages "
                  f"in {seeded.seconds:.1f} s")
            started = time.perf_counter()
            rebuilt = search.rebuild()
            seconds = time.perf_counter() - started
            print(f"search rebuild: {rebuilt.messages} messages in {seconds:.1f} s "
                  f"({rebuilt.messages / seconds:,.0f} messages/s)")
            database.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            built_mark.write_text(f"{seeded.tickets} tickets, {rebuilt.messages} messages "
                                  "indexed\n")
        print(f"database size: {database_path.stat().st_size / 2**20:.0f} MiB")
        print(f"\n{'query':<22} {'text':<14} {'tickets':>8} {'first page':>11}")
        for label, text in QUERIES:
            terms = search.query_terms(text)
            count = search.best_matches(terms).count(database)
            median, _ = timed(lambda text=text: list_tickets(search=text, status="all"),
                              arguments.repeats)
            print(f"{label:<22} {text:<14} {count:>8} {median * 1000:>9.1f} ms")
        sql, params = search.best_matches(search.query_terms("printer jam")).sql()
        print("\nplan of the match subquery ('printer jam'):")
        for row in database.execute_sql(f"EXPLAIN QUERY PLAN {sql}", params):
            print("  ", row[3])
    finally:
        close_database()
    child_processes(seeder, directory, database_path, arguments.runs)
    if arguments.keep is None:
        print(f"\n(database in {directory}; remove it when done)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
