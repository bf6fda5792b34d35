"""The dependency pins CI installs, derived from setup.cfg (standard library only).

    python3 .ci/requirements.py floors             the floor of every dependency, as name==floor
    python3 .ci/requirements.py check-floors FILE  fail unless FILE pins each floor exactly
    python3 .ci/requirements.py merge 3.11=FREEZE 3.12=FREEZE ...
                                                   one constraints file from `pip freeze`
                                                   outputs, with a marker where Pythons differ

The floors are the ``>=`` bounds in install_requires and in the extras;
an exact ``==`` pin (a tool such as mypy) stays as it is.
"""

from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*(==|>=)\s*([^\s,;#]+)")
_EXTRAS = ("test", "postgresql", "headless")


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, tuple[str, str]]:
    """Every dependency setup.cfg declares: canonical name -> (operator, version)."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].splitlines()
    for extra in _EXTRAS:
        lines += config["options.extras_require"][extra].splitlines()
    found: dict[str, tuple[str, str]] = {}
    for line in lines:
        match = _REQUIREMENT.match(line.strip())
        if match:
            name, operator, version = match.groups()
            found[canonical(name)] = (operator, version)
    return found


def pins(text: str) -> dict[str, str]:
    """``name==version`` lines of a freeze or constraints file: canonical name -> version."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _REQUIREMENT.match(line.strip())
        if match and match.group(2) == "==" and ";" not in line:
            found[canonical(match.group(1))] = match.group(3)
    return found


def floors() -> str:
    return "".join(f"{name}=={version}\n" for name, (_, version) in sorted(declared().items()))


def check_floors(path: str) -> int:
    pinned = pins(Path(path).read_text())
    wrong = [
        f"{name}: setup.cfg says {operator}{version}, {path} pins {pinned.get(name, 'nothing')}"
        for name, (operator, version) in sorted(declared().items())
        if pinned.get(name) != version
    ]
    for line in wrong:
        print(line, file=sys.stderr)
    if wrong:
        print(f"Refresh {path} with .ci/refresh-constraints --floors.", file=sys.stderr)
    return 1 if wrong else 0


def merge(freezes: list[str]) -> str:
    """Pins common to every Python as they are; a pin that differs gets a marker per Python."""
    by_python = {}
    for argument in freezes:
        python, _, path = argument.partition("=")
        by_python[python] = pins(Path(path).read_text())
    names = sorted({name for found in by_python.values() for name in found})
    lines = []
    for name in names:
        versions = {python: found.get(name) for python, found in by_python.items()}
        if len(set(versions.values())) == 1:
            lines.append(f"{name}=={next(iter(versions.values()))}")
            continue
        for python, version in versions.items():
            if version is not None:
                lines.append(f'{name}=={version} ; python_version == "{python}"')
    return "".join(line + "\n" for line in lines)


def main(argv: list[str]) -> int:
    command, *rest = argv or ["--help"]
    if command == "floors" and not rest:
        sys.stdout.write(floors())
        return 0
    if command == "check-floors" and len(rest) == 1:
        return check_floors(rest[0])
    if command == "merge" and rest:
        sys.stdout.write(merge(rest))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
