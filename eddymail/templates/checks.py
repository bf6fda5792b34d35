"""Static checks of a parsed template: the mistakes that show without rendering it.

These run when staff save a template, so a typo is reported with its line before any
customer mail depends on it. They also catch private attribute names early, with a clearer
message than the sandbox gives when it refuses them at render time.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from jinja2 import Environment, meta, nodes

from eddymail.templates.defaults import TemplateSpec

_FORBIDDEN_TAGS: dict[type[nodes.Node], str] = {
    nodes.Extends: "{% extends %}",
    nodes.Include: "{% include %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
}
# Filters whose first argument names an attribute to read.
_ATTRIBUTE_FILTERS = frozenset({"attr", "selectattr", "rejectattr"})
_MAX_REPORTED_PROBLEMS = 5


def _line(first_line: int, jinja_line: int) -> int:
    return first_line + jinja_line - 1


@dataclass(frozen=True)
class Problem:
    """One mistake: its line in the whole source (None: the whole template) and what it is."""

    line: int | None
    message: str
    unknown_variable: bool = False


def _variable_tree(template_spec: TemplateSpec) -> dict[str, dict | None]:
    """The variables as a tree: ``{"ticket": {"id": None, "subject": None}, "token": None}``."""
    tree: dict[str, dict | None] = {}
    for variable in template_spec.variables:
        *parents, leaf = variable.name.split(".")
        level = tree
        for parent in parents:
            level = level.setdefault(parent, {})  # type: ignore[assignment]
        level[leaf] = None
    return tree


def find_problems(
    template_spec: TemplateSpec,
    tree: nodes.Template,
    environment: Environment,
    first_line: int,
) -> list[Problem]:
    """Everything wrong with one part of a template that shows without rendering it.

    ``first_line`` is where the part starts in the whole source, so lines point there.
    """
    problems: list[Problem] = []
    for kind, tag in _FORBIDDEN_TAGS.items():
        for node in tree.find_all(kind):
            problems.append(
                Problem(
                    _line(first_line, node.lineno),
                    f"{tag} is not allowed: a notification "
                    "template is a single text and cannot load other files",
                )
            )
    problems.extend(_private_access(tree, first_line))
    for node in tree.find_all(nodes.Filter):
        if node.name not in environment.filters:
            problems.append(
                Problem(_line(first_line, node.lineno), f"unknown filter {node.name!r}")
            )
    for node in tree.find_all(nodes.Test):
        if node.name not in environment.tests:
            problems.append(Problem(_line(first_line, node.lineno), f"unknown test {node.name!r}"))
    problems.extend(_unknown_variables(template_spec, tree, environment, first_line))
    return problems


def _private_access(tree: nodes.Template, first_line: int) -> list[Problem]:
    """Attribute names starting with an underscore, caught before the sandbox has to."""
    names: list[tuple[int, str]] = []
    for getattr_node in tree.find_all(nodes.Getattr):
        names.append((getattr_node.lineno, getattr_node.attr))
    for getitem_node in tree.find_all(nodes.Getitem):
        if isinstance(getitem_node.arg, nodes.Const) and isinstance(getitem_node.arg.value, str):
            names.append((getitem_node.lineno, getitem_node.arg.value))
    for filter_node in tree.find_all(nodes.Filter):
        arguments = [pair.value for pair in filter_node.kwargs if pair.key == "attribute"]
        if filter_node.name in _ATTRIBUTE_FILTERS and filter_node.args:
            arguments.append(filter_node.args[0])
        for argument in arguments:
            if isinstance(argument, nodes.Const) and isinstance(argument.value, str):
                names.append((filter_node.lineno, argument.value))
    return [
        Problem(
            _line(first_line, line),
            f"{attribute!r} is private: names starting with '_' cannot be used in a template",
        )
        for line, attribute in names
        if attribute.startswith("_")
    ]


def _unknown_variables(
    template_spec: TemplateSpec, tree: nodes.Template, environment: Environment, first_line: int
) -> list[Problem]:
    variables = _variable_tree(template_spec)
    # Names the template reads from outside: its own {% set %}, loop and macro names are not.
    outside = _undeclared(tree, environment) - set(environment.globals)
    problems: dict[tuple[int | None, str], Problem] = {}
    for name in tree.find_all(nodes.Name):
        if name.ctx == "load" and name.name in outside and name.name not in variables:
            # Report a misspelt root once, at its first use.
            line = _line(first_line, name.lineno)
            problems.setdefault((None, name.name), _unknown(template_spec, line, name.name))
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        chain = _attribute_chain(node)
        if chain is None or chain[0] not in outside or chain[0] not in variables:
            continue
        level = variables[chain[0]]
        for depth, key in enumerate(chain[1:], start=2):
            if level is None:
                break  # past a plain value: its methods (upper, ...) are the sandbox's business
            if key not in level:
                if not key.startswith("_"):  # names starting with '_' are reported as private
                    dotted = ".".join(chain[:depth])
                    problem = _unknown(template_spec, _line(first_line, node.lineno), dotted)
                    problems.setdefault((problem.line, dotted), problem)
                break
            level = level[key]
    return list(problems.values())


def _undeclared(tree: nodes.Template, environment: Environment) -> set[str]:
    """Names a template reads from outside, even when it also uses an unknown filter.

    Jinja's analysis compiles the template and stops at the first unknown filter or test;
    those are reported separately, so stand-ins let the variables be checked in the same
    pass and staff see every mistake at once.
    """
    unknown_filters = {n.name for n in tree.find_all(nodes.Filter)} - set(environment.filters)
    unknown_tests = {n.name for n in tree.find_all(nodes.Test)} - set(environment.tests)
    if not unknown_filters and not unknown_tests:
        return meta.find_undeclared_variables(tree)
    lenient = environment.overlay()
    lenient.filters = {**environment.filters, **dict.fromkeys(unknown_filters, _stand_in)}
    lenient.tests = {**environment.tests, **dict.fromkeys(unknown_tests, _stand_in)}
    tree.set_environment(lenient)
    try:
        return meta.find_undeclared_variables(tree)
    finally:
        tree.set_environment(environment)


def _stand_in(*args: object, **kwargs: object) -> None:
    """Placeholder for an unknown filter or test during analysis; never called."""


def _attribute_chain(node: nodes.Node) -> list[str] | None:
    """``ticket.subject`` or ``ticket['subject']`` as ``["ticket", "subject"]``."""
    if isinstance(node, nodes.Name):
        return [node.name]
    if isinstance(node, nodes.Getattr):
        base = _attribute_chain(node.node)
        return None if base is None else [*base, node.attr]
    if (
        isinstance(node, nodes.Getitem)
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        base = _attribute_chain(node.node)
        return None if base is None else [*base, node.arg.value]
    return None


def _unknown(template_spec: TemplateSpec, line: int | None, dotted: str) -> Problem:
    message = f"unknown variable {dotted!r}"
    guess = difflib.get_close_matches(dotted, template_spec.variable_names, n=1)
    if guess:
        message += f" (did you mean {guess[0]!r}?)"
    return Problem(line, message, unknown_variable=True)


def missing_required(
    template_spec: TemplateSpec, trees: tuple[nodes.Template, ...], environment: Environment
) -> list[Problem]:
    """Required variables (the test letter's token) that neither part uses."""
    used: set[str] = set()
    for tree in trees:
        used |= _undeclared(tree, environment)
        for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
            chain = _attribute_chain(node)
            if chain is not None:
                used.add(".".join(chain))
    return [
        Problem(
            None,
            f"the template must use {{{{ {variable.name} }}}}: "
            f"{variable.description[0].lower()}{variable.description[1:]}",
        )
        for variable in template_spec.variables
        if variable.required and variable.name not in used
    ]


def describe(template_spec: TemplateSpec, problems: list[Problem]) -> str:
    """One message listing the problems by line, and the variables when one was unknown."""
    ordered = sorted(problems, key=lambda problem: problem.line or 0)
    texts = [
        f"line {problem.line}: {problem.message}" if problem.line else problem.message
        for problem in ordered[:_MAX_REPORTED_PROBLEMS]
    ]
    if len(ordered) > _MAX_REPORTED_PROBLEMS:
        texts.append(f"and {len(ordered) - _MAX_REPORTED_PROBLEMS} more")
    if any(problem.unknown_variable for problem in ordered):
        texts.append(f"available: {', '.join(template_spec.variable_names)}")
    return "; ".join(texts)
