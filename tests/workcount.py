"""Measuring work instead of time: step budgets, and a fake clock for the product's deadlines.

No test may assert on wall-clock time (a loaded machine makes any bound flaky). What a
"must be quick" test means is "does little work": ``work_budget`` counts the steps a block
takes (Python lines executed, Python and C functions called), the same number on any
machine, and stops the block once it takes more than its budget, so a runaway (quadratic)
regression fails at once instead of running for minutes. ``FakeClock`` stands in for
``time`` in a product module whose deadline a test drives by hand. ``traced_peak`` measures
the memory a block takes (Python allocations), again the same on any machine.
"""

from __future__ import annotations

import contextlib
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any


class WorkBudgetExceeded(BaseException):
    """The block took more steps than its budget allows.

    A ``BaseException``, so that no ``except Exception`` in the code under test can turn it
    into an ordinary error.
    """


@dataclass
class WorkCount:
    """Steps taken so far inside a ``work_budget`` block."""

    steps: int = 0


@contextlib.contextmanager
def work_budget(limit: int) -> Iterator[WorkCount]:
    """Count the steps the block takes in this thread; raise ``WorkBudgetExceeded`` from
    inside it at the first step over ``limit``.

    A step is a line of Python executed or a function (Python or C) called. Work inside one
    C call (a regular expression scan, a big string operation) is one step whatever it
    costs: this measures the Python-level algorithm, which is where parsers go quadratic.
    """
    count = WorkCount()

    def step() -> None:
        count.steps += 1
        if count.steps > limit:
            sys.settrace(None)  # the exception is not counted on its way out
            sys.setprofile(None)
            raise WorkBudgetExceeded(f"more than {limit} steps")

    def trace(frame: FrameType, event: str, argument: Any) -> Callable[..., Any]:
        if event in ("call", "line"):
            step()
        return trace

    def profile(frame: FrameType, event: str, argument: Any) -> None:
        if event == "c_call":
            step()

    previous = sys.gettrace(), sys.getprofile()
    sys.settrace(trace)
    sys.setprofile(profile)
    try:
        yield count
    finally:
        sys.settrace(previous[0])
        sys.setprofile(previous[1])


def work_done(function: Callable[[], object], *, limit: int) -> int:
    """How many steps ``function()`` takes (stopped with ``WorkBudgetExceeded`` past
    ``limit``)."""
    with work_budget(limit) as count:
        function()
    return count.steps


class FakeClock:
    """A stand-in for the ``time`` module of a product module: ``monotonic()`` returns
    ``now``, which moves only when the test says so, or by ``tick`` at every reading."""

    def __init__(self, now: float = 1000.0, tick: float = 0.0) -> None:
        self.now = now
        self.tick = tick

    def monotonic(self) -> float:
        """The fake time (then ``tick`` later)."""
        now = self.now
        self.now += self.tick
        return now

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        self.now += seconds


@dataclass
class TracedPeak:
    """What ``traced_peak`` measured: the most memory Python held at once in the block."""

    bytes: int = 0


@contextlib.contextmanager
def traced_peak() -> Iterator[TracedPeak]:
    """Trace Python's allocations in the block; ``.bytes`` is their peak once it ends."""
    measured = TracedPeak()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        yield measured
        measured.bytes = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
