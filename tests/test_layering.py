"""The dependency direction of design.md §2, read from every module's imports."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "eddymail"
DATABASE_MODULES = {"eddymail.db", "eddymail.db.models", "eddymail.db.migrations", "peewee",
                    "playhouse"}


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def modules() -> dict[str, set[str]]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        found[".".join(relative.parts)] = imports_of(path)
    return found


def top(name: str) -> str:
    return name.split(".")[0]


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_only_cli_imports_click():
    offenders = [m for m, names in modules().items()
                 if any(top(n) == "click" for n in names) and not under(m, "eddymail.cli")]
    assert offenders == []


def test_only_the_output_module_imports_rich():
    offenders = [m for m, names in modules().items()
                 if any(top(n) == "rich" for n in names) and m != "eddymail.cli.output"]
    assert offenders == []


def test_nothing_imports_the_cli():
    offenders = [m for m, names in modules().items()
                 if any(under(n, "eddymail.cli") for n in names)
                 and not under(m, "eddymail.cli") and m != "eddymail.__main__"]
    assert offenders == []


def test_mail_layer_never_touches_the_database_or_services():
    forbidden = DATABASE_MODULES | {"eddymail.services"}
    offenders = {m: sorted(n for n in names if any(under(n, f) for f in forbidden))
                 for m, names in modules().items() if under(m, "eddymail.mail")}
    assert {m: n for m, n in offenders.items() if n} == {}


def test_cli_does_no_sql_and_opens_no_database():
    offenders = {m: sorted(n for n in names if any(under(n, f) for f in DATABASE_MODULES))
                 for m, names in modules().items() if under(m, "eddymail.cli")}
    assert {m: n for m, n in offenders.items() if n} == {}


def test_lower_layers_do_not_import_services():
    lower = ("eddymail.mail", "eddymail.db.models", "eddymail.db", "eddymail.config",
             "eddymail.errors", "eddymail.secrets", "eddymail.templates", "eddymail.db.migrations")
    offenders = [m for m, names in modules().items()
                 if any(under(m, prefix) for prefix in lower)
                 and any(under(n, "eddymail.services") for n in names)]
    assert offenders == []


def test_the_checker_sees_real_imports():
    # Guard against a checker that passes because it reads nothing.
    found = modules()
    assert "click" in {top(n) for n in found["eddymail.cli.app"]}
    assert "rich.console" in found["eddymail.cli.output"]
