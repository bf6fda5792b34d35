"""No test asserts on wall-clock time (design.md §5, issue 10).

On a loaded machine any "must finish within N seconds" fails for no fault of the code, so a
deadline inside the product is tested with a tiny deadline, a fake clock or a count of work
(see ``tests/workcount.py``), and speed is measured only by the scripts in ``bench/``. This
module reads every test source with ``ast`` and fails on:

- an ``assert`` that orders (``<``, ``<=``, ``>``, ``>=``) a time measurement: a reading of
  a ``time`` clock, a name or helper result computed from one, or a value whose name says it
  is a duration (``elapsed``, ``run.seconds``...);
- ``pytest.fail`` under an ``if`` that orders a time measurement;
- an ``assert`` on ``something.wait(timeout)`` (an event that must come within N seconds);
- ``pytest.mark.timeout``.

A generous hang guard (kill a child that still runs after minutes, then let its exit code
fail the test) and readiness polls in the harness are not assertions and pass.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
CLOCK_FUNCTIONS = {
    "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns", "time", "time_ns",
    "process_time", "process_time_ns", "thread_time", "thread_time_ns", "default_timer",
}  # fmt: skip
CLOCK_MODULES = {"time", "timeit"}
DURATION_NAME = re.compile(
    r"^(elapsed|duration|seconds|waited|wall_?clock)(_\w*)?$|_(elapsed|duration|waited)$")
ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
ARITHMETIC = {"abs", "float", "int", "max", "min", "round", "sum"}


class TimingScan:
    """The time measurements of one module, and the assertions made on them."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.clock_modules = set(CLOCK_MODULES)
        self.clock_names: set[str] = set()
        self.timed_names: set[str] = set()
        # A helper's result: True when all of it is a measurement, else the positions of
        # the measurements in the tuple it returns.
        self.timed_helpers: dict[str, bool | set[int]] = {}
        self._imports()
        self._spread()

    def _imports(self) -> None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in CLOCK_MODULES:
                        self.clock_modules.add(alias.asname or alias.name)
            elif isinstance(node, ast.ImportFrom) and node.module in CLOCK_MODULES:
                for alias in node.names:
                    if alias.name in CLOCK_FUNCTIONS:
                        self.clock_names.add(alias.asname or alias.name)

    def _spread(self) -> None:
        """Follow measurements through assignments and helper returns until nothing new."""
        while True:
            before = (len(self.timed_names), len(self.timed_helpers))
            for node in ast.walk(self.tree):
                if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                    self._assignment(node)
                elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    self._helper(node)
            if (len(self.timed_names), len(self.timed_helpers)) == before:
                return

    def _assignment(self, node: ast.Assign | ast.AnnAssign | ast.AugAssign) -> None:
        if node.value is None:
            return
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        positions = self._tuple_positions(node.value)
        for target in targets:
            if isinstance(target, ast.Tuple) and isinstance(positions, set):
                for index, element in enumerate(target.elts):
                    if index in positions and isinstance(element, ast.Name):
                        self.timed_names.add(element.id)
            elif positions is True and isinstance(target, ast.Name):
                self.timed_names.add(target.id)

    def _helper(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for inner in ast.walk(node):
            if isinstance(inner, ast.Return) and inner.value is not None:
                positions = self._tuple_positions(inner.value)
                if positions:
                    self.timed_helpers.setdefault(node.name, positions)

    def _tuple_positions(self, value: ast.expr) -> bool | set[int]:
        """True when ``value`` is a measurement; for a tuple, which elements are."""
        if isinstance(value, ast.Tuple):
            return {index for index, element in enumerate(value.elts) if self.measures(element)}
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name):
            helper = self.timed_helpers.get(value.func.id)
            if helper is not None:
                return helper
        return self.measures(value)

    def is_clock_reading(self, node: ast.AST) -> bool:
        """``time.monotonic()``, ``perf_counter()`` and the like."""
        if not isinstance(node, ast.Call):
            return False
        function = node.func
        if isinstance(function, ast.Name):
            return function.id in self.clock_names
        return (isinstance(function, ast.Attribute) and function.attr in CLOCK_FUNCTIONS
                and isinstance(function.value, ast.Name)
                and function.value.id in self.clock_modules)

    def measures(self, node: ast.AST) -> bool:
        """Whether the expression's value is (arithmetic on) a time measurement.

        Arguments of a call count only for arithmetic helpers (``round(elapsed)``): an
        object built from a measurement (``Report(seconds, rss)``) is not one itself.
        """
        if self.is_clock_reading(node):
            return True
        if isinstance(node, ast.Name):
            return node.id in self.timed_names or bool(DURATION_NAME.search(node.id.lower()))
        if isinstance(node, ast.Attribute):
            return bool(DURATION_NAME.search(node.attr.lower()))
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name is not None and self.timed_helpers.get(name) is True:
                return True
            return name in ARITHMETIC and any(self.measures(arg) for arg in node.args)
        return any(self.measures(child) for child in ast.iter_child_nodes(node)
                   if isinstance(child, ast.expr))

    def orders_a_measurement(self, test: ast.AST) -> bool:
        """Whether ``test`` compares a measurement with ``<``, ``<=``, ``>`` or ``>=``."""
        for node in ast.walk(test):
            if (isinstance(node, ast.Compare)
                    and any(isinstance(op, ORDERING) for op in node.ops)
                    and any(self.measures(part) for part in [node.left, *node.comparators])):
                return True
        return False

    def findings(self) -> Iterator[tuple[int, str]]:
        """``(line, what)`` for every wall-clock assertion in the module."""
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assert):
                if self.orders_a_measurement(node.test):
                    yield node.lineno, "asserts on a time measurement"
                elif _waits_with_timeout(node.test):
                    yield node.lineno, "asserts that something happens within a timeout"
            elif isinstance(node, ast.If) and self.orders_a_measurement(node.test):
                if any(_is_pytest_fail(inner) for inner in ast.walk(ast.Module(node.body, []))):
                    yield node.lineno, "fails the test on a time measurement"
            elif isinstance(node, ast.Attribute) and node.attr == "timeout" and (
                    isinstance(node.value, ast.Attribute) and node.value.attr == "mark"):
                yield node.lineno, "uses pytest.mark.timeout"


def _waits_with_timeout(test: ast.AST) -> bool:
    return any(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr == "wait" and (node.args or node.keywords)
               for node in ast.walk(test))


def _is_pytest_fail(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "fail" and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "pytest")


def wall_clock_assertions(source: str) -> list[tuple[int, str]]:
    """Every wall-clock assertion in ``source``, as ``(line, what)``."""
    return sorted(TimingScan(ast.parse(source)).findings())


def test_no_test_asserts_on_wall_clock_time():
    found = {}
    for path in sorted(TESTS.rglob("*.py")):
        for line, what in wall_clock_assertions(path.read_text()):
            found[f"{path.relative_to(TESTS.parent)}:{line}"] = what
    assert found == {}, "make the deadline tiny, fake the clock or count work instead"


# --- the scan itself: it must see each form, and let the harmless ones pass ---------------


CAUGHT = {
    "difference in the assert": """
import time
started = time.monotonic()
work()
assert time.monotonic() - started < 2.0
""",
    "through a name": """
from time import perf_counter as clock
t0 = clock()
work()
elapsed_here = clock() - t0
assert elapsed_here < 1
""",
    "through a helper returning a tuple": """
import time
def timed(run):
    started = time.monotonic()
    return run(), time.monotonic() - started
outcome, spent = timed(work)
assert spent <= 10
""",
    "a duration attribute": """
run = run_child()
assert run.seconds < 8, run.describe()
""",
    "a lower bound": """
import time as clock
begin = clock.time()
work()
assert clock.time() - begin > 1, "cannot have waited"
""",
    "pytest.fail under an if": """
import time
import pytest
ends = time.monotonic() + 30
while poll():
    if time.monotonic() > ends:
        pytest.fail("still running")
""",
    "rounded": """
import time
started = time.perf_counter()
work()
assert round(time.perf_counter() - started, 1) <= 0.5
""",
    "an event that must come in time": """
assert holding.wait(10), "never got the lock"
""",
    "pytest.mark.timeout": """
import pytest
@pytest.mark.timeout(5)
def test_quick():
    work()
""",
}

PASSES = {
    "a deadline handed to the product": """
import time
endpoint = Endpoint(host, port, deadline=time.monotonic() + 1.5)
assert "deadline" in error.message
""",
    "the product's own words about time": """
assert f"took longer than {sandbox.MAX_SECONDS:g} seconds" in message
assert "did not finish within 1 seconds" in answer
""",
    "a timestamp stamped now": """
from datetime import UTC, datetime
before = datetime.now(UTC)
assert before <= written <= datetime.now(UTC)
""",
    "a clock reading as a unique name": """
import time
user = create_user(f"login-{time.monotonic_ns()}")
assert user.login.startswith("login-")
""",
    "the other half of a timed tuple": """
import time
def timed(run):
    started = time.monotonic()
    return run(), time.monotonic() - started
outcomes, spent = timed(work)
assert len(outcomes) >= 2
""",
    "a hang guard": """
import threading
guard = threading.Timer(300, process.kill)
guard.start()
status = process.wait()
assert status == 3
""",
    "an object built from a measurement": """
import time
def run_measured(argv):
    started = time.monotonic()
    status, rss = run(argv)
    return ChildRun(status, time.monotonic() - started, rss)
child = run_measured(["eddymail"])
assert child.max_rss_bytes < 300 * 2**20
""",
    "a wait without a timeout": """
assert release.wait()
""",
}


@pytest.mark.parametrize("case", CAUGHT)
def test_the_scan_catches(case):
    assert wall_clock_assertions(CAUGHT[case]), CAUGHT[case]


@pytest.mark.parametrize("case", PASSES)
def test_the_scan_lets_pass(case):
    assert wall_clock_assertions(PASSES[case]) == []
