"""The CLI renders plain view objects that services return, never ORM rows (design.md §2).

A live peewee row in the CLI would let a table and ``--json`` render different values, and
every attribute read would be a query the CLI did not mean to make. Two checks:

- statically, the return annotation of every service function a CLI module uses, followed
  into the dataclasses it names, must not mention a peewee ``Model``;
- at run time, a profile hook watches every value a ``services`` function returns to a
  ``cli`` frame, through a session that runs every command group, and looks inside it
  (dataclass fields, lists, tuples, dicts) for a row.

(That no CLI module imports ``eddymail.db`` at all is ``tests/test_layering.py``'s job.)
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import importlib
import inspect
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import peewee
import pytest

from eddymail.db.models import Department
from tests.mailfactory import make_mail

CLI = Path(__file__).resolve().parent.parent / "eddymail" / "cli"


# --- statically: what the annotations promise ------------------------------------------------


def service_functions_used_by_cli() -> dict[str, Callable[..., Any]]:
    """``"cli module: service.function"`` -> the function, for every service function a CLI
    module calls directly or through a service module it imported."""
    found: dict[str, Callable[..., Any]] = {}
    for path in sorted(CLI.glob("*.py")):
        name = f"eddymail.cli.{path.stem}" if path.stem != "__init__" else "eddymail.cli"
        module = importlib.import_module(name)
        attributes = {(node.value.id, node.attr) for node in ast.walk(ast.parse(path.read_text()))
                      if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)}
        for bound, value in vars(module).items():
            if isinstance(value, types.ModuleType) and _is_service(value.__name__):
                for owner, attribute in attributes:
                    member = getattr(value, attribute, None) if owner == bound else None
                    if inspect.isfunction(member):
                        found[f"{name}: {value.__name__}.{attribute}"] = member
            elif inspect.isfunction(value) and _is_service(value.__module__):
                found[f"{name}: {value.__module__}.{value.__name__}"] = value
    return found


def _is_service(module: str) -> bool:
    return module == "eddymail.services" or module.startswith("eddymail.services.")


def rows_in_annotation(annotation: Any, seen: set[type] | None = None) -> list[str]:
    """Where a peewee ``Model`` appears in a type: itself, as a type argument, or in the
    field types of a dataclass it names (followed to any depth)."""
    seen = set() if seen is None else seen
    found: list[str] = []
    for argument in typing.get_args(annotation):
        found += rows_in_annotation(argument, seen)
    if not isinstance(annotation, type) or annotation in seen:
        return found
    seen.add(annotation)
    if issubclass(annotation, peewee.Model):
        return [*found, annotation.__name__]
    if dataclasses.is_dataclass(annotation):
        hints = typing.get_type_hints(annotation)
        for field in dataclasses.fields(annotation):
            found += [f"{annotation.__name__}.{field.name}: {row}"
                      for row in rows_in_annotation(hints[field.name], seen)]
    return found


def test_the_service_functions_the_cli_uses_are_found():
    used = service_functions_used_by_cli()
    assert "eddymail.cli.tickets: eddymail.services.tickets.queries.show_ticket" in used
    assert "eddymail.cli.channel_test: eddymail.services.channels.check.test_channel" in used
    assert len(used) > 40


@pytest.mark.parametrize("use", sorted(service_functions_used_by_cli()))
def test_no_service_function_the_cli_uses_returns_a_row(use):
    function = service_functions_used_by_cli()[use]
    assert "return" in function.__annotations__, "annotate what it returns, so this test reads it"
    assert rows_in_annotation(return_type(function)) == []


def return_type(function: Callable[..., Any]) -> Any:
    """The return annotation of ``function``, evaluated in its module.

    Only that one: a parameter's type may be imported for the type checker alone (a service
    module every ``ingest`` loads leaves the heavy ones to the functions that need them).
    """
    copy = types.FunctionType(function.__code__, function.__globals__)
    copy.__annotations__ = {"return": function.__annotations__["return"]}
    return typing.get_type_hints(copy)["return"]


@dataclasses.dataclass
class Inner:
    """A view that (wrongly) holds a row."""

    department: Department | None


@dataclasses.dataclass
class Outer:
    """A view holding that one deep inside."""

    items: list[tuple[int, Inner]]


def test_the_annotation_check_sees_rows_wherever_they_hide():
    assert rows_in_annotation(Department) == ["Department"]
    assert rows_in_annotation(list[Department]) == ["Department"]
    assert rows_in_annotation(tuple[str, Department | None]) == ["Department"]
    assert rows_in_annotation(Outer) == ["Outer.items: Inner.department: Department"]
    assert rows_in_annotation(dict[str, list[int]]) == []


# --- at run time: what the services really hand over ------------------------------------------


def row_inside(value: Any, depth: int = 0) -> str | None:
    """A description of the first ORM row found in ``value`` (or None)."""
    if isinstance(value, peewee.Model):
        return type(value).__name__
    if depth > 4:
        return None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        children: list[tuple[str, Any]] = [(field.name, getattr(value, field.name))
                                           for field in dataclasses.fields(value)]
    elif isinstance(value, list | tuple | set | frozenset):
        children = [(f"[{index}]", item) for index, item in enumerate(list(value)[:50])]
    elif isinstance(value, dict):
        children = [(f"[{key!r}]", item) for key, item in list(value.items())[:50]]
    else:
        return None
    for label, child in children:
        found = row_inside(child, depth + 1)
        if found:
            return f"{label}: {found}"
    return None


@contextlib.contextmanager
def rows_reaching_the_cli() -> Iterator[list[str]]:
    """Collect, while the block runs in this thread, every value a services function
    returns to a cli function that holds an ORM row."""
    leaks: list[str] = []

    def profile(frame: FrameType, event: str, value: Any) -> None:
        if event != "return" or value is None:
            return
        module = frame.f_globals.get("__name__", "")
        caller = frame.f_back
        if not _is_service(module) or caller is None:
            return
        if not caller.f_globals.get("__name__", "").startswith("eddymail.cli"):
            return
        found = row_inside(value)
        if found:
            leaks.append(f"{module}.{frame.f_code.co_name} returned {found}")

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield leaks
    finally:
        sys.setprofile(previous)


def test_no_command_receives_a_row(eddymail, support, tmp_path):
    """A session through every command group, watched: no service hands the CLI a row."""
    support("plain", "--email", "plain@example.test", "--protocol", "none", password=None)
    mail = tmp_path / "mail.eml"
    mail.write_bytes(make_mail("Printer on fire", sender="Anna <anna@customer.example>"))
    another = tmp_path / "another.eml"
    another.write_bytes(make_mail("Printer still on fire", sender="Anna <anna@customer.example>"))
    # (arguments, exit code); "--json" too for the ones that change nothing.
    steps: list[tuple[str, list[str], int | None]] = [
        ("write", ["department", "add", "Billing"], 0),
        ("write", ["department", "edit", "Billing", "--name", "Accounts"], 0),
        ("read", ["department", "list"], 0), ("read", ["department", "show", "Accounts"], 0),
        ("write", ["agent", "add", "anna", "--name", "Anna Petrova"], 0),
        ("write", ["agent", "edit", "anna", "--email", "anna@staff.example"], 0),
        ("read", ["agent", "list"], 0), ("read", ["agent", "show", "anna"], 0),
        ("write", ["channel", "edit", "plain", "--display-name", "Plain Desk"], 0),
        ("read", ["channel", "list"], 0), ("read", ["channel", "show", "plain"], 0),
        ("read", ["channel", "test", "plain", "--no-send"], 3),
        ("read", ["channel", "test", "--all"], 3),
        ("read", ["fetch"], 0), ("read", ["fetch", "plain"], 3),
        ("write", ["ingest", "--channel", "plain", str(mail)], 0),
        ("write", ["ingest", "--department", "Accounts", str(mail)], 0),
        ("read", ["ticket", "list"], 0), ("read", ["ticket", "show", "1"], 0),
        ("write", ["ticket", "note", "1", "-m", "Looked into it."], 0),
        ("write", ["ticket", "reply", "1", "-m", "On it."], None),
        ("write", ["ticket", "move", "1", "Accounts"], 0),
        ("write", ["ticket", "assign", "1", "me"], None),
        ("write", ["ticket", "assign", "1", "anna"], 0),
        ("read", ["ticket", "list", "--mine"], 0),
        ("read", ["template", "preview", "staff_customer_reply", "--ticket", "1"], 0),
        ("write", ["ticket", "close", "1"], 0), ("write", ["ticket", "reopen", "1"], 0),
        ("write", ["snippet", "add", "thanks", "-m", "Thank you."], 0),
        ("read", ["snippet", "list"], 0), ("read", ["snippet", "show", "thanks"], 0),
        ("write", ["snippet", "edit", "thanks", "-m", "Thanks!"], 0),
        ("write", ["ticket", "reply", "1", "--snippet", "thanks"], None),
        ("write", ["ticket", "priority", "1", "high"], 0),
        ("write", ["ingest", "--department", "Accounts", str(another)], 0),
        ("write", ["ticket", "tag", "1", "2", "--add", "vip", "--yes"], 0),
        ("read", ["ticket", "list", "--tag", "vip", "--priority", "high"], 0),
        ("read", ["ticket", "list", "--search", "printer"], 0),
        ("write", ["ticket", "close", "--search", "printer", "--yes"], None),
        ("write", ["ticket", "merge", "1", "2", "--yes"], 0),
        ("write", ["ticket", "export", "--format", "csv"], 0),
        ("write", ["search", "rebuild"], 0), ("write", ["snippet", "remove", "thanks"], 0),
        ("read", ["user", "list"], 0), ("read", ["user", "show", "anna@customer.example"], 0),
        ("read", ["mail", "list"], 0), ("read", ["mail", "inspect", str(mail)], 0),
        ("read", ["outbox", "list"], 0), ("write", ["outbox", "retry"], None),
        ("read", ["log"], 0), ("read", ["template", "list"], 0),
        ("read", ["template", "show", "reply"], 0),
        ("read", ["template", "preview", "reply", "--ticket", "1"], 0),
        ("write", ["settings", "set", "helpdesk-name", "Eddy"], 0),
        ("read", ["settings", "list"], 0), ("read", ["settings", "get", "helpdesk-name"], 0),
        ("write", ["channel", "remove", "plain", "--yes"], 0),
        ("write", ["agent", "remove", "anna"], 0),
    ]
    for kind, args, code in steps:
        for json_mode in ([], ["--json"]) if kind == "read" else ([],):
            with rows_reaching_the_cli() as leaks:
                result = eddymail(*args, *json_mode, code=code)
            assert leaks == [], (args, json_mode)
            assert "Traceback" not in result.output + result.stderr, (args, result.stderr)


def test_the_watch_sees_a_row_handed_to_the_cli():
    """The control: a planted service that returns a row inside a view, called from a
    planted CLI module, is reported."""
    service = _planted_module("eddymail.services.planted", """
import dataclasses
from eddymail.db.models import Department

@dataclasses.dataclass
class View:
    names: list
    departments: dict

def leaky():
    return View(["a"], {"first": Department(name="Support")})

def clean():
    return View(["a"], {"first": "Support"})
""")
    cli = _planted_module("eddymail.cli.planted", "def render(service):\n"
                                                  "    return service.leaky(), service.clean()\n")
    with rows_reaching_the_cli() as leaks:
        cli.render(service)
    assert leaks == ["eddymail.services.planted.leaky returned departments: ['first']: "
                     "Department"]


def _planted_module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source, f"<{name}>", "exec", dont_inherit=True), module.__dict__)  # noqa: S102
    return module
