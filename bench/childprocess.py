"""Measure one child process: wall time, CPU time and peak resident memory.

Shared by the bench scripts. CPU time (user + system) comes from ``wait4`` and is the figure
least disturbed by other work on a shared machine; wall time is printed next to it.

Peak memory needs care: Linux carries a process's high-water mark across ``exec``, so a child
started from this (big) Python process would report at least this process's size. The child is
therefore run under GNU time (``/usr/bin/time``), a small C program, whose ``%M`` is the
child's own figure. Without GNU time the figure is an upper bound and says so.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

GNU_TIME = shutil.which("time", path="/usr/bin:/bin")


@dataclass(frozen=True)
class Measurement:
    """What one run of a command cost."""

    cpu: float  # seconds, user + system, of the command (and anything it started)
    wall: float  # seconds
    max_rss: int  # bytes


@dataclass
class Series:
    """Repeated measurements of one command, for medians."""

    label: str
    runs: list[Measurement] = field(default_factory=list)

    @property
    def cpu(self) -> float:
        """Median CPU seconds."""
        return statistics.median(run.cpu for run in self.runs)

    @property
    def wall(self) -> float:
        """Median wall seconds."""
        return statistics.median(run.wall for run in self.runs)

    @property
    def max_rss(self) -> int:
        """Median peak RSS in bytes."""
        return int(statistics.median(run.max_rss for run in self.runs))


def measure(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
            stdin: bytes | None = None, cwd: str | os.PathLike[str] | None = None,
            expect: int = 0) -> Measurement:
    """Run ``argv`` once; raise with its output if it exits with anything but ``expect``."""
    with tempfile.NamedTemporaryFile("w+", prefix="rss-", suffix=".txt") as rss_file:
        command = list(argv)
        if GNU_TIME:
            command = [GNU_TIME, "-q", "-f", "%M", "-o", rss_file.name, *command]
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=dict(env) if env is not None else None, cwd=cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if stdin is not None:
            assert process.stdin is not None
            process.stdin.write(stdin)
            process.stdin.close()
        # Read the pipes before reaping, or a chatty child would block on a full pipe; then
        # reap with wait4 ourselves to get the rusage (Popen.wait would discard it).
        assert process.stdout is not None and process.stderr is not None
        output, errors = process.stdout.read(), process.stderr.read()
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        process.stdout.close()
        process.stderr.close()
        if process.returncode != expect:
            raise RuntimeError(
                f"{' '.join(argv)} exited {process.returncode} (expected {expect}):\n"
                f"{output.decode(errors='replace')}\n{errors.decode(errors='replace')}")
        rss_text = Path(rss_file.name).read_text().strip()
        max_rss = int(rss_text.splitlines()[-1]) * 1024 if GNU_TIME and rss_text else (
            usage.ru_maxrss * 1024)
    return Measurement(cpu=usage.ru_utime + usage.ru_stime, wall=wall, max_rss=max_rss)


def rss_note() -> str:
    """How peak memory is measured here, for the report."""
    if GNU_TIME:
        return f"peak RSS by {GNU_TIME} (the child's own high-water mark)"
    return "peak RSS by wait4 (no GNU time here: an upper bound, includes this script's size)"


def load_average() -> str:
    """The machine's load as ``uptime`` shows it (1, 5 and 15 minutes) and the CPU count."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def mib(size: float) -> str:
    """Bytes as MiB with one decimal."""
    return f"{size / 1024 / 1024:.1f} MiB"
