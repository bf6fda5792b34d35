"""Measure one child process: wall time, CPU time and peak resident memory.

Shared by the bench scripts. CPU time (user + system) is the figure least disturbed by other
work on a shared machine; wall time is printed next to it.

The child is started by a tiny launcher (``python -S``, 8.5 MiB) that forks, execs it and
reports the child's own ``wait4`` figures, so neither this script's CPU time nor its size
gets into them. Linux carries a process's high-water mark across ``exec``, so a child forked
from this (big) process would report at least this process's size; from the launcher it
reports at least the launcher's, below anything measured here (``python -c pass`` is
10.5 MiB).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# Forks, execs argv[2:] and writes the child's "utime stime maxrss_kib wall exit_code" to
# argv[1]; the exit code is passed on.
_LAUNCHER = """\
import os, sys, time
started = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - started
code = os.waitstatus_to_exitcode(status)
with open(sys.argv[1], "w") as result:
    result.write(f"{usage.ru_utime} {usage.ru_stime} {usage.ru_maxrss} {wall} {code}")
sys.exit(code)
"""


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
    with tempfile.NamedTemporaryFile("w+", prefix="measured-", suffix=".txt") as result:
        completed = subprocess.run(
            [sys.executable, "-S", "-c", _LAUNCHER, result.name, *argv],
            env=dict(env) if env is not None else None, cwd=cwd,
            input=stdin if stdin is not None else b"", capture_output=True, check=False)
        if completed.returncode != expect:
            raise RuntimeError(
                f"{' '.join(argv)} exited {completed.returncode} (expected {expect}):\n"
                f"{completed.stdout.decode(errors='replace')}\n"
                f"{completed.stderr.decode(errors='replace')}")
        utime, stime, max_rss_kib, wall, _ = Path(result.name).read_text().split()
    return Measurement(cpu=float(utime) + float(stime), wall=float(wall),
                       max_rss=int(max_rss_kib) * 1024)


def compile_package(package_directory: Path) -> None:
    """Write the package's bytecode, as an installed package has it.

    Without it (``PYTHONDONTWRITEBYTECODE`` set, or a fresh checkout) every run of a child
    compiles the modules it imports from source, and that, not eddymail, is what would be
    measured.
    """
    import compileall

    compileall.compile_dir(str(package_directory), quiet=1)


def child_environment(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` for a measured child: it may write bytecode like any installed program."""
    return {key: value for key, value in base.items() if key != "PYTHONDONTWRITEBYTECODE"}


def rss_note() -> str:
    """How the figures are taken, for the report."""
    return "CPU, wall and peak RSS of the child alone (wait4 in a small launcher)"


def load_average() -> str:
    """The machine's load as ``uptime`` shows it (1, 5 and 15 minutes) and the CPU count."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def mib(size: float) -> str:
    """Bytes as MiB with one decimal."""
    return f"{size / 1024 / 1024:.1f} MiB"
