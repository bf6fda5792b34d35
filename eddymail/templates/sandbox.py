"""The hardened Jinja environment that renders staff-edited notification templates.

Templates are edited by staff and stored in a shared database, then rendered inside ``fetch``
(run by cron, holding mailbox passwords in memory). Jinja's sandbox already keeps a template
away from Python internals; this module adds what the sandbox leaves open, so a careless or
hostile template can neither run forever nor build a huge value in memory:

* every loop item, call and ``range`` element is charged to a per-render step budget, and a
  wall-clock deadline backs it up;
* every piece of output, including text captured by ``{% set %}`` blocks, macros and filter
  blocks, is charged to a per-render write budget (these buffers never reach the caller's
  output cap, so capping only the final text would be too late);
* operators and filters that can multiply a value's size (``*``, ``**``, ``%``, ``~``,
  ``center``, ``replace``, ``join``, width arguments, ...) are checked before they run.

There is no loader: ``{% include %}`` and friends have nothing to read from.
"""

from __future__ import annotations

import re
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import StrictUndefined, nodes, pass_context, pass_environment, pass_eval_context
from jinja2 import filters as jinja_filters
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

# The longest value a template may build, and the longest rendered part (shared with the
# renderer of simple templates).
from eddymail.templates.layout import MAX_TEXT_CHARS

#: Total characters a render may write into all its buffers (output, macros, set blocks).
MAX_WRITTEN_CHARS = 1_000_000
#: Loop items + calls + range elements one render may spend.
MAX_STEPS = 100_000
#: Largest ``range()`` a template may ask for.
MAX_RANGE_ITEMS = 10_000
#: Wall-clock limit for one render, a backstop behind the step budget.
MAX_SECONDS = 2.0
#: Largest integer ``*`` and ``**`` may produce; big-integer arithmetic is slow enough to hang.
MAX_INTEGER = 10**18

# Names of filters injected by the AST rewrite in ``harden``; user templates never need them.
GUARD_ITER = "eddymail_guard_iter"
GUARD_OUTPUT = "eddymail_guard_output"
GUARD_CONCAT = "eddymail_guard_concat"

# Filters kept from Jinja's set: the ones useful in plain-text mail. HTML helpers (escape,
# urlize, xmlattr, tojson, safe) and non-deterministic or debugging ones (random, pprint)
# are left out so a template stays a predictable piece of text.
_KEPT_FILTERS = (
    "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "filesizeformat",
    "first", "float", "groupby", "int", "items", "last", "length", "list", "lower", "map",
    "max", "min", "reject", "rejectattr", "reverse", "round", "select", "selectattr", "sort",
    "string", "striptags", "title", "trim", "truncate", "unique", "upper", "urlencode",
    "wordcount",
)  # fmt: skip

# str methods whose integer argument is the length of the result.
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
# A width or precision of six digits or more in a %-directive or a {}-field.
_PERCENT_DIRECTIVE = re.compile(r"%[^a-zA-Z%]*")
_FORMAT_FIELD = re.compile(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}")
_BIG_NUMBER = re.compile(r"\d{6,}")
_NUMBER = re.compile(r"\d+")
# The most characters a number prints in a field without a width: a float in 'f' notation
# has up to 309 digits before the point.
_NUMBER_CHARS = 330


class RenderLimitError(Exception):
    """A template went over one of the render limits (time, steps, size)."""


@dataclass
class _Budget:
    """What one render may still spend; lives in a context variable during the render."""

    steps_left: int
    chars_left: int
    deadline: float

    def charge_steps(self, steps: int) -> None:
        self.steps_left -= steps
        if self.steps_left < 0:
            raise RenderLimitError(
                f"the template does too much work (over {MAX_STEPS} loop steps and calls)"
            )
        if time.monotonic() > self.deadline:
            raise RenderLimitError(f"the template took longer than {MAX_SECONDS:g} seconds")

    def charge_chars(self, chars: int) -> None:
        self.chars_left -= chars
        if self.chars_left < 0:
            raise RenderLimitError(f"the template writes more than {MAX_WRITTEN_CHARS} characters")


# A context variable rather than an attribute of the environment: one environment is shared
# by all renders, and renders in different threads must not share a budget.
_budget: ContextVar[_Budget | None] = ContextVar("eddymail_template_budget", default=None)


@contextmanager
def render_budget() -> Iterator[None]:
    """Give the renders inside the ``with`` block a fresh budget of steps, characters and time."""
    token = _budget.set(_Budget(MAX_STEPS, MAX_WRITTEN_CHARS, time.monotonic() + MAX_SECONDS))
    try:
        yield
    finally:
        _budget.reset(token)


def _charge_steps(steps: int = 1) -> None:
    # Outside a render (the compiler folding constants) there is nothing to charge.
    budget = _budget.get()
    if budget is not None:
        budget.charge_steps(steps)


def _check_size(value: object, what: str = "a value") -> None:
    if isinstance(value, Sized) and not isinstance(value, range) and len(value) > MAX_TEXT_CHARS:
        raise RenderLimitError(f"{what} would be longer than {MAX_TEXT_CHARS} characters")


def _check_width(width: object, what: str) -> None:
    if isinstance(width, int) and width > MAX_TEXT_CHARS:
        raise RenderLimitError(f"{what} {width} is over the limit of {MAX_TEXT_CHARS}")


def _check_length(length: int, what: str) -> None:
    """Refuse an operation before it runs when its result would be too long."""
    if length > MAX_TEXT_CHARS:
        raise RenderLimitError(
            f"{what} would have length {length}, over the limit of {MAX_TEXT_CHARS}"
        )


def _check_format_string(template: str, arguments: Iterable[object], percent: bool) -> None:
    """Refuse a format operation whose result could be too long, before it runs.

    Each field can produce at most its width or precision plus its longest argument (a
    float in ``f`` notation adds up to ``_NUMBER_CHARS`` digits), so the sum over the
    fields bounds the result: hundreds of fields each under the width limit, or one long
    argument repeated in every field, are refused as surely as one huge width.
    """
    arguments = list(arguments)
    directives = (_PERCENT_DIRECTIVE if percent else _FORMAT_FIELD).findall(template)
    longest = max((_printed_length(argument) for argument in arguments), default=0)
    # A width taken from the arguments ('%*s', '{:{}}') may be any of the integers given.
    widest = max((argument for argument in arguments if isinstance(argument, int)
                  and not isinstance(argument, bool)), default=0)
    bound = len(template)
    for directive in directives:
        if _BIG_NUMBER.search(directive):
            raise RenderLimitError(f"the width in {directive!r} is too large")
        numbers = [int(number) for number in _NUMBER.findall(directive)]
        taken = widest if "*" in directive or directive.count("{") > 1 else 0
        bound += max([0, *numbers]) + taken + longest + _NUMBER_CHARS
        if bound > MAX_TEXT_CHARS:
            raise RenderLimitError(
                f"formatting {len(directives)} field(s) could build a text over the limit of "
                f"{MAX_TEXT_CHARS} characters")


def _printed_length(value: object) -> int:
    """How long ``value`` can print in one format field (containers print their items)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping) and len(value) < 1000:  # '%(name)s' % {...}, or its repr
        return sum(_printed_length(key) + _printed_length(item) + 4
                   for key, item in value.items())
    if isinstance(value, Iterable) and isinstance(value, Sized) \
            and not isinstance(value, range):
        if len(value) >= 1000:
            return MAX_TEXT_CHARS + 1
        return sum(_printed_length(item) + 4 for item in value)
    return 0  # a number: covered by _NUMBER_CHARS


def _bounded_range(*args: int) -> range:
    """``range`` for templates: bounded in size and charged to the step budget."""
    numbers = range(*args)
    try:
        length = len(numbers)
    except OverflowError:  # longer than sys.maxsize
        length = MAX_RANGE_ITEMS + 1
    if length > MAX_RANGE_ITEMS:
        raise RenderLimitError(f"range() of {length} items is over the limit of {MAX_RANGE_ITEMS}")
    _charge_steps(length)
    return numbers


@pass_context
def _guard_iter(context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    # pass_context keeps the compiler from running this filter at compile time.
    for item in iterable:
        _charge_steps()
        yield item


@pass_context
def _guard_output(context: Context, value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    budget = _budget.get()
    if budget is not None:
        budget.charge_chars(len(text))
    return text


@pass_context
def _guard_concat(context: Context, values: list[object]) -> str:
    text = "".join(value if isinstance(value, str) else str(value) for value in values)
    _check_size(text, "a joined text (~)")
    return text


# Size-checked versions of the Jinja filters that can grow a value by a large factor.


def _center(value: str, width: int = 80) -> str:
    _check_width(width, "center() width")
    return jinja_filters.do_center(value, width)


def _indent(s: str, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    prefix = width if isinstance(width, int) else len(str(width))
    _check_length(prefix * (str(s).count("\n") + 1), "indent()")
    return jinja_filters.do_indent(s, width, first, blank)


@pass_eval_context
def _replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    text, old, new = str(s), str(old), str(new)
    hits = text.count(old) if old else len(text) + 1
    if count is not None:
        hits = min(hits, max(count, 0))
    _check_length(len(text) + hits * (len(new) - len(old)), "replace()")
    return jinja_filters.do_replace(eval_ctx, s, old, new, count)


@pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = list(value)
    _check_length(len(str(d)) * len(items), "join()")
    result = jinja_filters.sync_do_join(eval_ctx, items, d, attribute)
    _check_size(result, "join()")
    return result


def _format(value: str, *args: Any, **kwargs: Any) -> str:
    _check_format_string(str(value), [*args, *kwargs.values()], percent=True)
    return jinja_filters.do_format(value, *args, **kwargs)


@pass_environment
def _wordwrap(environment: Any, s: str, width: int = 79, break_long_words: bool = True,
              wrapstring: str | None = None, break_on_hyphens: bool = True) -> str:  # fmt: skip
    # Worst case: a break after every character.
    separator = len(wrapstring) if wrapstring is not None else 1
    _check_length(len(str(s)) * (separator + 1), "wordwrap()")
    return jinja_filters.do_wordwrap(
        environment, s, width, break_long_words, wrapstring, break_on_hyphens
    )


def _slice(value: Iterable[Any], slices: int, fill_with: Any = None) -> Any:
    _check_width(slices, "slice() count")
    # Jinja's slice wants a sized collection; a template may hand it any iterable.
    return list(jinja_filters.sync_do_slice(list(value), slices, fill_with))


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Any:
    _check_width(linecount, "batch() size")
    return list(jinja_filters.do_batch(value, linecount, fill_with))


@pass_environment
def _sum(environment: Any, iterable: Iterable[Any], attribute: Any = None, start: Any = 0) -> Any:
    items = list(iterable)
    if isinstance(start, Sized):
        # Adding sequences concatenates them: measure first so the sum is never built too big.
        total = len(start)
        for item in items:
            part = environment.getattr(item, attribute) if attribute is not None else item
            total += len(part) if isinstance(part, Sized) else 0
        _check_length(total, "sum()")
    return jinja_filters.sync_do_sum(environment, items, attribute, start)


class HardenedEnvironment(ImmutableSandboxedEnvironment):
    """A sandbox with budgets: see the module docstring for what it adds to Jinja's."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        # autoescape off: the output is plain-text mail, not HTML.
        # StrictUndefined: a misspelt or missing value is an error, not a silent blank.
        # No loader: nothing in a template can name a file.
        super().__init__(undefined=StrictUndefined, autoescape=False, loader=None)
        # Only a bounded range() is global: cycler, joiner, namespace, lipsum and dict are not
        # needed for mail text, and namespace() would let a loop accumulate state.
        self.globals = {"range": _bounded_range}
        kept = {name: self.filters[name] for name in _KEPT_FILTERS}
        kept.update(
            center=_center, indent=_indent, replace=_replace, join=_join, format=_format,
            wordwrap=_wordwrap, slice=_slice, batch=_batch, sum=_sum,
        )  # fmt: skip
        kept[GUARD_ITER] = _guard_iter
        kept[GUARD_OUTPUT] = _guard_output
        kept[GUARD_CONCAT] = _guard_concat
        self.filters = kept

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Run an intercepted operator after checking it cannot build something huge."""
        _charge_steps()
        if operator == "**":
            _check_power(left, right)
        elif operator == "*":
            _check_product(left, right)
        elif operator == "%" and isinstance(left, str):
            arguments = right if isinstance(right, tuple) else (right,)
            _check_format_string(left, arguments, percent=True)
        result = super().call_binop(context, operator, left, right)
        _check_size(result, f"the result of {operator!r}")
        return result

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call something from a template, charging the call and checking sizes."""
        _charge_steps()
        for argument in (*args, *kwargs.values()):
            _check_size(argument, "an argument")
        if isinstance(obj, types.BuiltinMethodType) and isinstance(obj.__self__, str):
            if obj.__name__ in _PADDING_METHODS:
                for argument in (*args, *kwargs.values()):
                    _check_width(argument, f"{obj.__name__}() width")
            elif obj.__name__ == "replace" and len(args) >= 2:
                hits = obj.__self__.count(str(args[0])) if args[0] else len(obj.__self__) + 1
                growth = len(str(args[1])) - len(str(args[0]))
                _check_length(len(obj.__self__) + hits * growth, "replace()")
        result = super().call(context, obj, *args, **kwargs)
        _check_size(result, "the result of a call")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Sandbox ``str.format`` as Jinja does, and refuse huge widths first."""
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        template = str(value.__self__)

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format_string(template, [*args, *kwargs.values()], percent=False)
            return wrapper(*args, **kwargs)

        return checked


def _check_power(base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0:
        return  # float powers overflow with an error instead of hanging
    if abs(base) > 1 and (abs(base).bit_length() - 1) * exponent > MAX_INTEGER.bit_length():
        raise RenderLimitError(f"{base} ** {exponent} is too large")


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if abs(left).bit_length() + abs(right).bit_length() > MAX_INTEGER.bit_length() + 1:
            raise RenderLimitError(f"{left} * {right} is too large")
        return
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, Sized) and isinstance(times, int):
            _check_length(len(sequence) * times, "repeating a value")


def harden(template: nodes.Template, environment: HardenedEnvironment) -> nodes.Template:
    """Rewrite a parsed template so loops, output and ``~`` go through the budget guards.

    The rewrite happens on the AST, after the static checks, because the sandbox has no hook
    for iteration or for writing output: wrapping those nodes in filter calls is the only way
    to charge them. Line numbers are kept so errors still point at the right line.
    """
    for loop in template.find_all(nodes.For):
        loop.iter = _filter_node(loop.iter, GUARD_ITER)
    for output in template.find_all(nodes.Output):
        output.nodes = [
            _filter_node(
                nodes.Const(child.data, lineno=child.lineno)
                if isinstance(child, nodes.TemplateData)
                else child,
                GUARD_OUTPUT,
            )
            for child in output.nodes
        ]
    # Replace every ~ concatenation. Reversed pre-order visits children before their parents,
    # so a Concat nested in another is rewritten before the outer one is moved into a filter.
    for parent in [template, *reversed(list(template.find_all(nodes.Node)))]:
        for field, value in parent.iter_fields():
            replaced = _replace_concat(value)
            if replaced is not value:
                setattr(parent, field, replaced)
    template.set_environment(environment)
    return template


def _replace_concat(value: Any) -> Any:
    if isinstance(value, nodes.Concat):
        items = nodes.List(list(value.nodes), lineno=value.lineno)
        return _filter_node(items, GUARD_CONCAT)
    if isinstance(value, list):
        replaced = [_replace_concat(item) for item in value]
        return replaced if any(a is not b for a, b in zip(replaced, value, strict=True)) else value
    return value


def _filter_node(node: nodes.Node, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)
