"""README's "Where things are" stays true: every room it names exists, every room is named.

A contributor reads that section to find where a change goes; a folder added without a line
there (or a line left behind by a move) would send them to the wrong place.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "eddymail"


def section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("### Where things are")
    end = text.find("\n#", start + 1)
    return text[start:end if end >= 0 else len(text)]


def folder_lines(text: str) -> dict[str, str]:
    """The code block of the section: path -> what the line (and its continuation) says."""
    block = text.split("```", 2)[1]
    lines: dict[str, str] = {}
    current = ""
    for line in block.splitlines():
        if not line.strip():
            continue
        if line.startswith(" "):  # continuation of the line above
            lines[current] += " " + line.strip()
            continue
        match = re.match(r"(\S.*?/(?: \(top level\))?|\S+/\s+\S+/)\s{2,}(.*)", line)
        assert match, f"not a 'path   description' line: {line!r}"
        current = match.group(1)
        lines[current] = match.group(2)
    return lines


def packages() -> list[str]:
    """Every package folder below eddymail/, as ``eddymail/x/`` and ``eddymail/x/y/``."""
    return sorted(f"{path.parent.relative_to(ROOT).as_posix()}/"
                  for path in PACKAGE.rglob("__init__.py")
                  if path.parent != PACKAGE and "__pycache__" not in path.parts)


def test_every_listed_folder_exists():
    for path in folder_lines(section()):
        for part in path.replace("(top level)", "").split():
            assert (ROOT / part).is_dir(), f"README names {part}, which does not exist"


def test_every_package_folder_is_listed_or_named_on_its_parent_line():
    lines = folder_lines(section())
    for folder in packages():
        if folder in lines:
            continue
        modules = {path.name for path in (ROOT / folder).glob("*.py")}
        children = [other for other in packages() if other.startswith(folder) and other != folder]
        if modules == {"__init__.py"} and children and all(child in lines for child in children):
            continue  # only a roof over listed folders (eddymail/mail/)
        parent = folder.rstrip("/").rsplit("/", 1)[0] + "/"
        name = folder.rstrip("/").rsplit("/", 1)[1]
        parent_line = lines.get(parent) or lines.get(f"{parent} (top level)", "")
        assert name in parent_line, f"{folder} has no line in README's 'Where things are'"


def test_every_top_level_module_is_named():
    top = next(text for path, text in folder_lines(section()).items() if "(top level)" in path)
    words = top.replace(" ", "").lower()
    for module in sorted(PACKAGE.glob("*.py")):
        if module.stem.startswith("__"):
            continue
        assert module.stem in words, f"eddymail/{module.name} is not named on the top-level line"


def test_every_module_of_the_fetch_walkthrough_exists():
    text = section()
    named = re.findall(r"`((?:cli|services|mail|db)/[\w/]+\.py)`", text)
    assert len(named) >= 5
    for relative in named:
        assert (PACKAGE / relative).is_file(), f"README's fetch walkthrough names {relative}"


def test_the_checks_above_read_the_section():
    """Guard against a parser that finds nothing, so every loop above is vacuous."""
    lines = folder_lines(section())
    assert "eddymail/mail/wire/" in lines and "eddymail/services/fetch/" in lines
    assert len(lines) >= 15
    assert "eddymail/services/watch/" in packages() and len(packages()) >= 12
