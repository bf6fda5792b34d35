"""No private internals of the standard library anywhere in ``eddymail/`` but the adapters.

A name with a leading underscore on someone else's object (``imap._cmd_log``,
``getattr(msg, "_payload")``, ``from email._header_value_parser import ...``, a subclass that
overrides or reads ``_get_socket``) is an internal that any Python release may change without
notice. The few eddymail still needs live in one adapter module per library, each pinned by
tests/test_stdlib_adapters.py or tests/test_stdlib_email.py. This test counts every such
access across the whole package (cli, services, db, mail, secrets, templates, the top level)
and fails on one outside the adapters, and on an exception below that no longer exists.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import smtplib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import eddymail

PACKAGE = Path(eddymail.__file__).resolve().parent

# The only modules allowed to use private standard-library names (each with its own tests).
ADAPTERS = {"mail/wire/stdlib_imaplib.py", "mail/wire/stdlib_smtplib.py",
            "mail/message/stdlib_email.py"}

# Leading underscore, but documented public API: not an internal.
PUBLIC_DESPITE_UNDERSCORE = {
    "_exit": "os._exit: documented in the os module (leave now, without cleanup handlers)",
    "_replace": "namedtuple._replace: documented namedtuple method (urllib.parse results)",
    "_asdict": "namedtuple._asdict: documented namedtuple method",
    "_fields": "namedtuple._fields: documented namedtuple attribute",
    "_make": "namedtuple._make: documented namedtuple method",
}

# Not the standard library, so outside this rule, but listed so that every leading
# underscore on a foreign object in the package is accounted for: (file, expression) -> why.
NOT_STDLIB = {
    ("db/fastsql.py", "model._meta"):
        "peewee (third party): Model._meta is peewee's documented metadata API",
    ("db/blobs.py", "model._meta"):
        "peewee (third party): Model._meta is peewee's documented metadata API",
    ("db/connection.py", "peewee._savepoint"):
        "peewee (third party, private): the savepoint class a Database.savepoint() returns; "
        "subclassed so a rollback after SQLite's own rollback does not hide the first error",
    ("services/oauth/flows.py", "owner._arrived"):
        "eddymail's own listener, reached from the request handler class nested in it",
}


@dataclass(frozen=True)
class Access:
    """One use of a leading-underscore name on a foreign object."""

    path: str
    line: int
    expression: str
    name: str


def private_accesses(source: str, path: str = "<source>") -> list[Access]:
    """Every ``obj._name`` (obj not ``self``/``cls``), ``super()._name``, ``getattr``-family
    call or ``vars(obj)[...]`` with a ``"_name"`` constant, and import of a ``_name`` from
    (or of) a module outside eddymail. Dunder names are not private."""
    found: list[Access] = []

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    for node in ast.walk(ast.parse(source)):
        expression = name = None
        if isinstance(node, ast.Attribute) and private(node.attr):
            owner = node.value
            if not (isinstance(owner, ast.Name) and owner.id in ("self", "cls")):
                expression, name = ast.unparse(node), node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str) and private(node.args[1].value)):
            expression, name = ast.unparse(node), node.args[1].value
        elif (isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, str) and private(node.slice.value)
                and (ast.unparse(node.value).startswith("vars(")
                     or ast.unparse(node.value).endswith(".__dict__"))):
            expression, name = ast.unparse(node), node.slice.value
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] != "eddymail":
            parts = node.module.split(".")
            hidden = [part for part in parts if private(part)]
            hidden += [alias.name for alias in node.names if private(alias.name)]
            if hidden:
                expression, name = ast.unparse(node), hidden[0]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                hidden = [part for part in alias.name.split(".") if private(part)]
                if hidden and alias.name.split(".")[0] != "eddymail":
                    expression, name = ast.unparse(node), hidden[0]
        if expression is not None and name is not None:
            found.append(Access(path, getattr(node, "lineno", 0), expression, name))
    return sorted(found, key=lambda access: access.line)


def typing_only_imports(source: str) -> set[int]:
    """Lines of imports under ``if TYPE_CHECKING:`` (never run: ``_typeshed`` is the type
    checker's, not the runtime's)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING",
                                                                   "typing.TYPE_CHECKING"):
            for inner in node.body:
                for child in ast.walk(inner):
                    if isinstance(child, ast.Import | ast.ImportFrom):
                        lines.add(child.lineno)
    return lines


def package_accesses() -> list[Access]:
    """Every private access in the package, outside the adapters and typing-only imports."""
    found: list[Access] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in ADAPTERS:
            continue
        source = path.read_text(encoding="utf-8")
        skip = typing_only_imports(source)
        found += [access for access in private_accesses(source, relative)
                  if access.line not in skip]
    return found


def test_the_scanner_finds_every_form_of_private_access():
    planted = "\n".join([
        "imap._cmd_log.clear()",
        "getattr(sock, '_sslobj', None)",
        "setattr(message, '_payload', [])",
        "vars(message)['_payload']",
        "message.__dict__['_charset']",
        "super()._get_socket(host, port, timeout)",
        "from email._header_value_parser import get_address_list",
        "from imaplib import _Authenticator",
        "import _ssl",
        "frame = sys._getframe(1)",
        # not private, or our own:
        "self._x = cls._y",
        "print(message.__class__, message.__dict__)",
        "from eddymail.mail.wire import _helpers",
        "hasattr(x, '__len__')",
    ])
    names = [access.name for access in private_accesses(planted)]
    assert names == ["_cmd_log", "_sslobj", "_payload", "_payload", "_charset", "_get_socket",
                     "_header_value_parser", "_Authenticator", "_ssl", "_getframe"]


def test_the_scanner_skips_only_imports_the_type_checker_reads():
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
              "    from _typeshed import ReadableBuffer\nfrom _typeshed import X\n")
    assert typing_only_imports(source) == {3}


def test_no_private_standard_library_internal_outside_the_adapters():
    """The count the issue asks for: 0 outside the adapters, across all of eddymail/."""
    accesses = package_accesses()
    unexplained = [f"{access.path}:{access.line}: {access.expression}" for access in accesses
                   if access.name not in PUBLIC_DESPITE_UNDERSCORE
                   and (access.path, access.expression) not in NOT_STDLIB]
    assert unexplained == []
    # An exception that no longer happens must go, or it would excuse the next one.
    seen = {(access.path, access.expression) for access in accesses}
    assert sorted(set(NOT_STDLIB) - seen) == []


def _own(cls: type) -> bool:
    return cls.__module__.split(".")[0] == "eddymail"


def _classes() -> list[type]:
    """Every class defined in an eddymail module (all modules imported)."""
    found: dict[str, type] = {}
    for module_info in pkgutil.walk_packages([str(PACKAGE)], prefix="eddymail."):
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if value.__module__ == module.__name__:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return list(found.values())


def _adapter_module(cls: type) -> bool:
    path = Path(inspect.getfile(cls)).resolve().relative_to(PACKAGE).as_posix()
    return path in ADAPTERS


def _self_private_names(cls: type) -> set[str]:
    """The ``self._name`` / ``cls._name`` the class's own source reads or writes."""
    try:
        tree = ast.parse(inspect.getsource(cls).lstrip())  # nested classes are indented
    except (OSError, TypeError):
        return set()
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
            and node.attr.startswith("_") and not node.attr.startswith("__")}


def _assigned_by_own_classes(mro: tuple[type, ...], is_own: Callable[[type], bool]) -> set[str]:
    names: set[str] = set()
    for klass in mro:
        if is_own(klass):
            names |= set(vars(klass))
            try:
                tree = ast.parse(inspect.getsource(klass).lstrip())
            except (OSError, TypeError):
                continue
            names |= {node.attr for node in ast.walk(tree)
                      if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)}
    return names


def _defined_in_body(cls: type) -> set[str]:
    """Names the class statement itself defines (methods, class attributes)."""
    try:
        tree = ast.parse(inspect.getsource(cls).lstrip())
    except (OSError, TypeError):
        return set()
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    names = {node.name for node in body
             if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    for node in body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else [])
        names |= {target.id for target in targets if isinstance(target, ast.Name)}
    return names


def library_private_members_used_by(cls: type, is_own: Callable[[type], bool] = _own
                                     ) -> list[str]:
    """A private member of a foreign base class that ``cls`` overrides or uses through
    ``self``: invisible to the scan above, just as fragile."""
    foreign = [klass for klass in cls.__mro__ if not is_own(klass) and klass is not object]
    if not foreign:
        return []
    found = []
    for name in sorted(_defined_in_body(cls)):
        if name.startswith("_") and not name.startswith("__") and any(
                hasattr(klass, name) for klass in foreign):
            found.append(f"{cls.__qualname__} overrides {name}")
    own = _assigned_by_own_classes(cls.__mro__, is_own)
    for name in sorted(_self_private_names(cls) - own):
        found.append(f"{cls.__qualname__} uses self.{name}")
    return found


class _PlantedSession(smtplib.SMTP):
    """A subclass reaching into its library base: what the next test must catch."""

    def _get_socket(self, host, port, timeout):  # type: ignore[no-untyped-def]
        return super()._get_socket(host, port, timeout)

    def sent(self) -> object:
        return self._host


class _PlantedOwn(threading.Thread):
    """Private names of its own: allowed."""

    def __init__(self) -> None:
        super().__init__()
        self._mine = 1

    def mine(self) -> int:
        return self._mine


def test_the_subclass_check_finds_overrides_and_reads_of_library_privates():
    def planted(klass: type) -> bool:
        return klass.__module__ == __name__

    assert library_private_members_used_by(_PlantedSession, planted) == [
        "_PlantedSession overrides _get_socket", "_PlantedSession uses self._host"]
    assert library_private_members_used_by(_PlantedOwn, planted) == []


def test_no_class_overrides_or_reads_a_private_member_of_a_library_base():
    found = [use for cls in _classes() if not _adapter_module(cls)
             for use in library_private_members_used_by(cls)]
    assert found == []
