"""The dependency direction of design.md §2, read from every module's imports with ``ast``.

Every import counts: absolute and relative (``from ..db import models`` is resolved), inside
functions, under ``if``/``try``/``TYPE_CHECKING``, and the module paths given to
``importlib.import_module`` or to a lazy command table (``"eddymail.cli.fetch:command"``).
The rule is the two tables below; the tests at the end plant a violation of every forbidden
edge in a synthetic package and check that the checker reports it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "eddymail"
SOURCE = Path(__file__).resolve().parent.parent / PACKAGE

# Which modules make up each layer (the longest matching prefix wins).
MEMBERS: dict[str, tuple[str, ...]] = {
    "cli": ("eddymail.cli", "eddymail.__main__"),
    "services": ("eddymail.services",),
    "mail": ("eddymail.mail",),  # the package itself, nothing in it
    "mail.wire": ("eddymail.mail.wire",),  # protocol sessions, TLS, endpoints
    "mail.message": ("eddymail.mail.message",),  # parsing and composing a message
    "db": ("eddymail.db",),  # connection, models, migrations, fastsql
    "secrets": ("eddymail.secrets",),
    "templates": ("eddymail.templates",),
    "base": ("eddymail", "eddymail.config", "eddymail.errors", "eddymail.safetext",
             "eddymail.crashpoints", "eddymail.presets", "eddymail.samples",
             "eddymail.searchtext", "eddymail.patterns"),
}

# THE RULE: layer -> the other layers it may import. Anything not listed is forbidden.
MAY_IMPORT: dict[str, set[str]] = {
    "cli": {"services", "secrets", "templates", "base"},  # never mail, never db
    "services": {"mail", "mail.wire", "mail.message", "db", "secrets", "templates", "base"},
    "mail": {"base"},
    "mail.wire": {"base"},
    "mail.message": {"base"},
    "db": {"base"},
    "secrets": {"base"},
    "templates": {"base"},
    "base": set(),
}

# Third-party and standard-library modules only some layers (or modules) may use.
DATABASE_USERS = {"db", "services"}
LIBRARY_USERS: dict[str, set[str]] = {
    "click": {"cli"},
    "rich": {"eddymail.cli.output"},
    "peewee": DATABASE_USERS,
    "playhouse": DATABASE_USERS,
    "sqlite3": DATABASE_USERS,
    "psycopg2": DATABASE_USERS,
    # Turning bytes into a message and back is mail/message's job, headers included.
    "email": {"mail.message"},
}

# A module path handed over as text to a lazy loader: "eddymail.x.y:attribute".
LAZY_TEXT = re.compile(rf"^({PACKAGE}(?:\.\w+)+):\w*$")
DYNAMIC_IMPORTS = {"import_module", "__import__"}


@dataclass(frozen=True, order=True)
class Violation:
    """One import a layer may not make."""

    module: str
    line: int
    imported: str
    why: str


def module_files(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root`` by dotted name (packages by their own)."""
    found = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports_of(module: str, path: Path, known: set[str]) -> Iterator[tuple[int, str]]:
    """``(line, imported module)`` for every import in ``path``, relative ones resolved.

    ``from a import b`` imports ``a.b`` when that is a module of the package, else ``a``.
    """
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    yield node.lineno, "." * node.level + base  # beyond the package: wrong
                    continue
                base = ".".join(parts[: len(parts) - (node.level - 1)] + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield node.lineno, candidate if candidate in known else base
        elif isinstance(node, ast.Call) and _called_name(node) in DYNAMIC_IMPORTS:
            argument = node.args[0] if node.args else None
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                yield node.lineno, argument.value
        elif isinstance(node, ast.Constant | ast.JoinedStr):
            lazy = _lazy_target(node)
            if lazy in known:
                yield getattr(node, "lineno", 0), lazy


def _called_name(call: ast.Call) -> str | None:
    function = call.func
    if isinstance(function, ast.Attribute):
        return function.attr
    return function.id if isinstance(function, ast.Name) else None


def _lazy_target(node: ast.Constant | ast.JoinedStr) -> str | None:
    """The module of a lazy command ("eddymail.x:attribute"), also as the fixed start of an
    f-string (f"eddymail.x:{name}")."""
    if isinstance(node, ast.JoinedStr):
        first = node.values[0] if node.values else None
        if not isinstance(first, ast.Constant):
            return None
        node = first
    if isinstance(node.value, str) and (match := LAZY_TEXT.match(node.value)):
        return match.group(1)
    return None


def layer_of(module: str) -> str | None:
    """The layer of one of our modules (None for anything else). The package itself
    (``eddymail``) is a member by its own name only, not a prefix of everything."""
    best: tuple[int, str] | None = None
    for layer, prefixes in MEMBERS.items():
        for prefix in prefixes:
            inside = module.startswith(prefix + ".") and prefix != PACKAGE
            if (module == prefix or inside) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return best[1] if best else None


def violations(root: Path = SOURCE) -> list[Violation]:
    """Every import in the package at ``root`` that the tables above forbid."""
    files = module_files(root)
    found = []
    for module, path in sorted(files.items()):
        layer = layer_of(module)
        if layer is None:
            found.append(Violation(module, 0, "", "belongs to no layer: add it to MEMBERS"))
            continue
        for line, imported in imports_of(module, path, set(files)):
            why = _forbidden(module, layer, imported)
            if why:
                found.append(Violation(module, line, imported, why))
    return sorted(set(found))


def _forbidden(module: str, layer: str, imported: str) -> str | None:
    if imported.startswith("."):
        return "relative import beyond the package"
    target = layer_of(imported)
    if target is not None:
        if target != layer and target not in MAY_IMPORT[layer]:
            return f"{layer} may not import {target}"
        return None
    users = LIBRARY_USERS.get(imported.split(".")[0])
    if users is not None and layer not in users and module not in users:
        return f"only {', '.join(sorted(users))} may import {imported.split('.')[0]}"
    return None


# --- the real tree ----------------------------------------------------------------------------


def test_every_import_runs_the_right_way():
    assert [f"{v.module}:{v.line} imports {v.imported}: {v.why}" for v in violations()] == []


def test_the_checker_sees_real_imports():
    # Guard against a checker that passes because it reads nothing.
    files = module_files(SOURCE)
    imported = {module: {name for _, name in imports_of(module, path, set(files))}
                for module, path in files.items()}
    assert "click" in imported["eddymail.cli.app"]
    assert "rich.console" in imported["eddymail.cli.output"]
    assert "eddymail.db.models" in imported["eddymail.services.channels.registry"]
    assert "eddymail.cli.fetch" in imported["eddymail.cli"]  # a lazy command table
    assert sum(len(names) for names in imported.values()) > 500


def test_every_layer_has_a_rule_and_members():
    assert set(MAY_IMPORT) == set(MEMBERS)
    assert {layer_of(module) for module in module_files(SOURCE)} == set(MEMBERS)


# --- planted violations: the checker must report each one -------------------------------------

# One module per layer in the synthetic package; the planted import goes into the first.
SAMPLE = {
    "cli": "eddymail.cli.sample",
    "services": "eddymail.services.fetch.sample",
    "mail.wire": "eddymail.mail.wire.sample",
    "mail.message": "eddymail.mail.message.sample",
    "db": "eddymail.db.models",
    "secrets": "eddymail.secrets",
    "templates": "eddymail.templates.sample",
    "base": "eddymail.config",
}
EDGES = [(layer, target) for layer in SAMPLE for target in SAMPLE if target != layer]


def plant(root: Path, module: str, source: str) -> Path:
    """A synthetic ``eddymail`` package under ``root`` with every sample module (empty), and
    ``source`` as the text of ``module``."""
    for name in [*SAMPLE.values(), "eddymail.cli.output"]:
        parts = name.split(".")
        for depth in range(1, len(parts)):
            package = root.joinpath(*parts[:depth])
            package.mkdir(exist_ok=True)
            (package / "__init__.py").touch()
        root.joinpath(*parts[:-1], parts[-1] + ".py").touch()
    root.joinpath(*module.split(".")[:-1], module.split(".")[-1] + ".py").write_text(source)
    return root / PACKAGE


def relative_form(importer: str, target: str) -> str:
    """``target`` imported relatively from ``importer``: up to the package, then down."""
    level = len(importer.split(".")) - 1  # from the importer's package up to eddymail/
    package, _, name = target.rpartition(".")
    below = package.removeprefix(PACKAGE).lstrip(".")
    return f"from {'.' * level}{below} import {name}"


def forms(importer: str, target: str) -> dict[str, str]:
    """The ways one module can import another, each a whole module source."""
    package, _, name = target.rpartition(".")
    relative = relative_form(importer, target)
    return {
        "import": f"import {target}\n",
        "from-import": f"from {package} import {name}\n",
        "from-import-name": f"from {target} import something\n",
        "relative": f"{relative}\n",
        "in-a-function": f"def later():\n    {relative}\n",
        "conditional": f"import sys\nif sys.platform == 'linux':\n    import {target}\n",
        "type-checking": ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                          f"    from {package} import {name}\n"),
        "in-try": f"try:\n    import {target}\nexcept ImportError:\n    pass\n",
        "importlib": f"import importlib\nimportlib.import_module('{target}')\n",
        "lazy-table": f"COMMANDS = {{'x': '{target}:command'}}\n",
    }


@pytest.mark.parametrize(("layer", "target"), EDGES,
                         ids=[f"{layer}->{target}" for layer, target in EDGES])
def test_a_planted_import_is_judged_by_the_table_in_every_form(tmp_path, layer, target):
    """Forbidden edges (every backward one among them) are reported, allowed ones not."""
    importer = SAMPLE[layer]
    expected = ([] if target in MAY_IMPORT[layer]
                else [(importer, f"{layer} may not import {target}")])
    for form, source in forms(importer, SAMPLE[target]).items():
        root = tmp_path / form
        root.mkdir()
        found = violations(plant(root, importer, source))
        assert [(v.module, v.why) for v in found] == expected, (form, source)


def test_the_planted_edges_include_every_rule_of_the_issue():
    forbidden = {edge for edge in EDGES if edge[1] not in MAY_IMPORT[edge[0]]}
    for layer, target in [("mail.wire", "services"), ("mail.message", "db"),
                          ("mail.wire", "cli"), ("db", "services"), ("db", "cli"),
                          ("db", "mail.message"), ("services", "cli"), ("cli", "db"),
                          ("cli", "mail.wire"), ("templates", "services"), ("base", "db")]:
        assert (layer, target) in forbidden


LIBRARY_CASES = [
    ("services", "click"), ("mail.wire", "click"), ("base", "click"),
    ("services", "rich"), ("cli", "rich.table"),
    ("cli", "peewee"), ("cli", "playhouse.db_url"), ("cli", "sqlite3"), ("cli", "psycopg2"),
    ("mail.message", "sqlite3"), ("mail.wire", "peewee"), ("templates", "peewee"),
    ("secrets", "sqlite3"), ("base", "psycopg2.extras"),
    ("services", "email.parser"), ("cli", "email.message"), ("mail.wire", "email.utils"),
]


@pytest.mark.parametrize(("layer", "library"), LIBRARY_CASES)
def test_a_planted_library_import_is_reported(tmp_path, layer, library):
    importer = SAMPLE[layer]
    for source in (f"import {library}\n", f"def later():\n    from {library} import x\n"):
        root = tmp_path / str(len(source))
        root.mkdir()
        found = violations(plant(root, importer, source))
        assert [(v.module, v.imported) for v in found] == [(importer, library)], source
        assert found[0].why.endswith(f"may import {library.split('.')[0]}")


def test_the_libraries_are_fine_where_they_belong(tmp_path):
    sources = {
        "eddymail.cli.sample": "import click\n",
        "eddymail.cli.output": "from rich.table import Table\nimport click\n",
        "eddymail.db.models": "import peewee\nimport sqlite3\nfrom playhouse import db_url\n",
        "eddymail.services.fetch.sample": "import peewee\nimport psycopg2\n",
        "eddymail.mail.message.sample": "import email.utils\nfrom email.parser import Parser\n",
    }
    for module, source in sources.items():
        root = tmp_path / module
        root.mkdir()
        assert violations(plant(root, module, source)) == [], module


def test_a_relative_import_beyond_the_package_is_reported(tmp_path):
    found = violations(plant(tmp_path, "eddymail.config", "from .. import elsewhere\n"))
    assert [v.why for v in found] == ["relative import beyond the package"]


def test_a_module_outside_every_layer_is_reported(tmp_path):
    root = plant(tmp_path, "eddymail.config", "")
    (root / "stray.py").write_text("")
    assert [(v.module, v.why) for v in violations(root)] == [
        ("eddymail.stray", "belongs to no layer: add it to MEMBERS")]
