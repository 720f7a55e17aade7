"""Sandboxed `{{ … }}` templates and branch expressions, checked when a flow loads.

Templates render with jinja2's `SandboxedEnvironment` and a strict undefined: a variable that is
not set is a clear `FlowTemplateError` at call time, never an empty string. On top of the
sandbox, every template is checked statically at load, so a flow that tries code execution
never loads:

- the only names are `vars` (the call's flow variables), `caller` (`number`, `name`), `call`
  (`uuid`, `destination`, `domain_name`, `domain_uuid`) and `now` (an aware datetime in the
  flow's time zone), plus names the template binds itself (`{% for %}`, `{% set %}`);
- no attribute or key that starts with `_` (`''.__class__`), no `attr` filter, and no globals
  but `range` (no `cycler`, `lipsum`, …);
- no `{% include %}`, `{% import %}`, `{% extends %}` (there is no loader anyway);
- unknown filters and tests are load errors, with a "did you mean".

Extra filters: `spell` ("123" → "1 2 3", for reading digits back), and the test
`match` (`vars.account is match('^\\d{6}$')`, a full regex match on a literal pattern, run by
the `regex` package under a time limit, so a pattern cannot backtrack for ever).

Cost is bounded too (`ivr_flows.limits`), because templates run on the hub every call shares:

- at load: a template's source has at most ``max_template_chars``; ``{% macro %}``, ``{% call %}``,
  ``{% filter %}``, block ``{% set %}`` and recursive loops are refused; constant expressions are
  folded by us, within the limits (``{{ 9 ** 14348907 > 1 }}`` is a load error naming the
  operation, not 25 s of the hub computing a 45-million-digit number), never by jinja's compiler
  (every operator, filter and test is routed through the checks below, which jinja does not fold);
- at call time: each render has a budget of ``template_steps`` operations (loop iterations,
  calls, filters, tests, operators; ``range(n)`` costs n), no text or list it builds may exceed
  ``template_value_chars`` characters and all of them together 16× that, no integer may exceed
  ``template_int_bits``, and the output is cut off at ``template_value_chars``. Operations that
  could build something huge before it can be measured (``**``, ``*``, ``+``, ``%``, ``replace``,
  ``join``, ``center``, ``format``, widths in format specs…) are checked before they run. A render
  over budget is a `FlowTemplateError` (the node's ``error`` edge), and a render that used a good
  part of its budget yields to the other calls afterwards. Lists and mappings are immutable in
  templates (jinja's immutable sandbox).
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import regex
from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes, pass_context
from jinja2.environment import TemplateExpression
from jinja2.exceptions import TemplateError
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from ivr_flows.errors import FlowTemplateError
from ivr_flows.limits import FlowLimits, flow_limits

ROOT_FIELDS: dict[str, tuple[str, ...] | None] = {
    "vars": None,  # any name: variables are set at call time
    "caller": ("number", "name"),
    "call": ("uuid", "destination", "domain_name", "domain_uuid"),
    "now": None,  # a datetime: .hour, .minute, .weekday(), .strftime(…)
}


class TemplateVars(dict[str, Any]):
    """The `vars` mapping seen by templates (a dict, so the message for a missing one is clear)."""


class _FlowUndefined(StrictUndefined):
    """StrictUndefined whose message names the flow variable that is not set."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
        name = self._undefined_name
        if isinstance(obj, TemplateVars) and isinstance(name, str):
            return f"variable 'vars.{name}' is not set"
        return str(super()._undefined_message)


def _spell(value: Any) -> str:
    return " ".join(str(value))


# ----------------------------------------------------------------------------- cost

class TemplateTooCostly(FlowTemplateError):
    """A render went over one of the template limits (steps, sizes, regex time)."""


class _Budget:
    """What one render may still spend."""

    __slots__ = ("chars", "limits", "regex_seconds", "spent", "steps")

    def __init__(self, limits: FlowLimits) -> None:
        self.limits = limits
        self.steps = limits.template_steps
        self.chars = 16 * limits.template_value_chars
        self.regex_seconds = 0.005
        self.spent = 0

    def step(self, n: int = 1) -> None:
        self.steps -= n
        self.spent += n
        if self.steps < 0:
            raise TemplateTooCostly(f"more than {self.limits.template_steps} operations (IVR_TEMPLATE_STEPS)")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("ivr_template_budget", default=None)
_COOPERATIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("ivr_template_cooperative", default=False)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:   # rendered outside Template.render / Expression.evaluate (jinja's own use)
        budget = _Budget(flow_limits())
        _BUDGET.set(budget)
    return budget


def _weight(value: Any, cap: int) -> int:
    """Characters `value` stands for (texts and containers, nested), counting stops past `cap`."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        else:
            total += 1
        if total > cap:
            return cap + 1
    return total


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_size(value: Any, limits: FlowLimits) -> int:
    if _is_int(value) and value.bit_length() > limits.template_int_bits:
        raise TemplateTooCostly(f"a number larger than {limits.template_int_bits} bits (IVR_TEMPLATE_INT_BITS)")
    weight = _weight(value, limits.template_value_chars)
    if weight > limits.template_value_chars:
        raise TemplateTooCostly(
            f"a value longer than {limits.template_value_chars} characters (IVR_TEMPLATE_VALUE_CHARS)")
    return weight


def _admit(value: Any) -> Any:
    """Charge a value a render built; refuse it when it is over the limits."""
    budget = _budget()
    budget.chars -= _check_size(value, budget.limits)
    if budget.chars < 0:
        raise TemplateTooCostly(f"more than {16 * budget.limits.template_value_chars} characters built in one render")
    return value


def _refuse_width(value: int, limits: FlowLimits) -> None:
    if value > limits.template_value_chars:
        raise TemplateTooCostly(f"a width of {value} (the limit is {limits.template_value_chars})")


_PRINTF_WIDTH = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")
_BRACE_WIDTH = re.compile(r"\{[^{}]*?:[^{}]*?(\d+)[^{}]*\}")


def _check_format(fmt: str, limits: FlowLimits) -> None:
    """Widths and precisions in a printf or str.format spec stay within the limits."""
    for match in _PRINTF_WIDTH.finditer(fmt):
        for group in match.groups():
            if group == "*":
                raise TemplateTooCostly("'*' widths are not allowed in a format")
            if group:
                _refuse_width(int(group), limits)
    for match in _BRACE_WIDTH.finditer(fmt):
        for number in re.findall(r"\d+", match.group(0).split(":", 1)[1]):
            _refuse_width(int(number), limits)


_SEQUENCES = (str, bytes, list, tuple)


def check_binop(operator: str, left: Any, right: Any, limits: FlowLimits) -> None:
    """Refuse an operation whose result would be over the limits, before computing it."""
    bits = limits.template_int_bits
    if operator == "**" and _is_int(left) and _is_int(right) and right > 0 and abs(left) > 1:
        if left.bit_length() * right > bits + 1:
            raise TemplateTooCostly(f"{left} ** {right} is larger than {bits} bits (IVR_TEMPLATE_INT_BITS)")
    elif operator == "**" and isinstance(right, int | float) and isinstance(left, int | float):
        if abs(right) > bits:
            raise TemplateTooCostly(f"an exponent of {right} (the limit is {bits})")
    elif operator == "*":
        if _is_int(left) and _is_int(right) and left.bit_length() + right.bit_length() > bits + 1:
            raise TemplateTooCostly(f"a product larger than {bits} bits (IVR_TEMPLATE_INT_BITS)")
        cap = limits.template_value_chars
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, _SEQUENCES) and _is_int(count) and count > 0 and _weight(seq, cap) * count > cap:
                raise TemplateTooCostly(f"repeating a value {count} times is longer than {cap} characters")
    elif operator == "+" and isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES):
        cap = limits.template_value_chars
        if _weight(left, cap) + _weight(right, cap) > cap:
            raise TemplateTooCostly(f"a value longer than {cap} characters (IVR_TEMPLATE_VALUE_CHARS)")
    elif operator == "%" and isinstance(left, str):
        _check_format(left, limits)


def _check_replace(text: Any, old: Any, new: Any, count: Any, limits: FlowLimits) -> None:
    if not isinstance(text, str) or not isinstance(old, str) or not isinstance(new, str):
        return
    times = (text.count(old) if old else len(text) + 1)
    if _is_int(count) and count >= 0:
        times = min(times, count)
    if len(text) + times * (len(new) - len(old)) > limits.template_value_chars:
        raise TemplateTooCostly(f"the replacement is longer than {limits.template_value_chars} characters")


def _check_join(items: Any, separator: Any, limits: FlowLimits) -> None:
    if isinstance(items, list | tuple | set | frozenset | dict | str):
        cap = limits.template_value_chars
        sep = len(separator) if isinstance(separator, str) else 0
        if _weight(items, cap) + sep * len(items) > cap:
            raise TemplateTooCostly(f"the joined text is longer than {cap} characters")


_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def _precheck_method(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any], limits: FlowLimits) -> None:
    """Methods of texts that can build something huge from small arguments."""
    target = getattr(obj, "__wrapped__", obj)           # the sandbox wraps str.format
    owner = getattr(target, "__self__", None)
    name = getattr(target, "__name__", "")
    if not isinstance(owner, str | bytes):
        return
    if name in _WIDTH_METHODS:
        for value in (*args, *kwargs.values()):
            if _is_int(value):
                _refuse_width(value, limits)
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else -1, limits)
    elif name == "join" and args:
        _check_join(args[0], owner, limits)
    elif name in ("format", "format_map") and isinstance(owner, str):
        _check_format(owner, limits)


_FILTER_PRECHECKS: dict[str, Callable[[tuple[Any, ...], dict[str, Any], FlowLimits], None]] = {
    "replace": lambda a, k, lim: _check_replace(a[0], a[1] if len(a) > 1 else k.get("old"),
                                                a[2] if len(a) > 2 else k.get("new"),
                                                a[3] if len(a) > 3 else k.get("count", -1), lim) if a else None,
    "join": lambda a, k, lim: _check_join(a[0], a[1] if len(a) > 1 else k.get("d", ""), lim) if a else None,
    "format": lambda a, k, lim: _check_format(a[0], lim) if a and isinstance(a[0], str) else None,
    "center": lambda a, k, lim: _refuse_width(a[1] if len(a) > 1 else k.get("width", 80), lim),
    "indent": lambda a, k, lim: _refuse_width(
        (a[1] if len(a) > 1 else k.get("width", 4)) * (str(a[0]).count("\n") + 1)
        if a and _is_int(a[1] if len(a) > 1 else k.get("width", 4)) else 0, lim),
}


# Filters written in Python that walk their input character by character: a short input only.
_SLOW_FILTERS = frozenset({"wordwrap", "urlize", "pprint", "striptags", "xmlattr"})
_SLOW_INPUT_CHARS = 4096


def _check_slow_input(name: str, args: tuple[Any, ...]) -> None:
    if args and _weight(args[0], _SLOW_INPUT_CHARS) > _SLOW_INPUT_CHARS:
        raise TemplateTooCostly(f"'{name}' takes at most {_SLOW_INPUT_CHARS} characters")


def _counted_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that charges the budget and checks its arguments and result. It takes the
    context, which also keeps jinja from calling it at compile time (constant folding)."""
    precheck = _FILTER_PRECHECKS.get(name)

    @pass_context
    def counted(context: Context, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        if precheck is not None:
            precheck(args, kwargs, budget.limits)
        if name in _SLOW_FILTERS:
            _check_slow_input(name, args)
        result = context.call(func, *args, **kwargs)
        return result if isinstance(result, Iterator) else _admit(result)

    counted.__name__ = f"counted_{name}"
    return counted


def _match(value: Any, pattern: str) -> bool:
    """A full match under the render's regex time budget (the `regex` package's timeout)."""
    budget = _budget()
    text = str(value)
    if len(text) > budget.limits.template_value_chars:
        raise TemplateTooCostly("the text to match is too long")
    started = time.monotonic()
    try:
        return regex.fullmatch(pattern, text, timeout=max(budget.regex_seconds, 0.0001)) is not None
    except TimeoutError:
        raise TemplateTooCostly(f"the pattern {pattern!r} took too long to match") from None
    finally:
        budget.regex_seconds -= time.monotonic() - started


def _counted_test(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @pass_context
    def counted(context: Context, *args: Any, **kwargs: Any) -> Any:
        _budget().step()
        return context.call(func, *args, **kwargs)

    counted.__name__ = f"counted_{name}"
    return counted


@pass_context
def _loop_budget(context: Context, iterable: Any) -> Iterator[Any]:
    """What every `{% for %}` iterates through (added at compile time): one step per item."""
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


def _range(*args: int) -> range:
    budget = _budget()
    value = range(*args)
    if len(value) > budget.limits.template_value_chars:
        raise TemplateTooCostly(f"range of {len(value)} numbers (the limit is {budget.limits.template_value_chars})")
    budget.step(max(1, len(value)))
    return value


class _FlowEnvironment(ImmutableSandboxedEnvironment):
    """jinja's immutable sandbox, with every operation charged and checked (see the module doc)."""

    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})
    intercepted_unops = frozenset({"+", "-"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _budget()
        budget.step()
        check_binop(operator, left, right, budget.limits)
        return _admit(super().call_binop(context, operator, left, right))

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        _budget().step()
        return super().call_unop(context, operator, arg)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        budget = _budget()
        budget.step()
        _precheck_method(__obj, args, kwargs, budget.limits)
        result = super().call(__context, __obj, *args, **kwargs)
        return result if isinstance(result, Iterator) else _admit(result)


def _make_environment() -> _FlowEnvironment:
    env = _FlowEnvironment(undefined=_FlowUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters.pop("attr", None)
    env.filters["spell"] = _spell
    env.filters = {name: _counted_filter(name, func) for name, func in env.filters.items()}
    env.filters["_loop_budget"] = _loop_budget
    env.tests["match"] = _match
    env.tests = {name: _counted_test(name, func) for name, func in env.tests.items()}
    env.globals = {"range": _range}  # no cycler/joiner/lipsum/namespace/dict
    return env


ENVIRONMENT = _make_environment()


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


_REFUSED_BLOCKS: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends", nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "import",
    nodes.Macro: "macro", nodes.CallBlock: "call", nodes.FilterBlock: "filter", nodes.AssignBlock: "set … endset",
}


def _static_value(node: nodes.Node) -> tuple[bool, Any]:
    """(True, value) for a constant expression, folded by us within the limits; else (False, None)."""
    if isinstance(node, nodes.Const):
        return True, node.value
    if isinstance(node, nodes.List | nodes.Tuple):
        items = [_static_value(item) for item in node.items]
        if all(known for known, _ in items):
            values = [value for _, value in items]
            return True, values if isinstance(node, nodes.List) else tuple(values)
        return False, None
    if isinstance(node, nodes.Neg | nodes.Pos):
        known, value = _static_value(node.node)
        if known and isinstance(value, int | float):
            return True, -value if isinstance(node, nodes.Neg) else value
        return False, None
    if isinstance(node, nodes.BinExpr):
        known_left, left = _static_value(node.left)
        known_right, right = _static_value(node.right)
        if not (known_left and known_right):
            return False, None
        limits = flow_limits()
        try:
            check_binop(node.operator, left, right, limits)
        except TemplateTooCostly as e:
            raise ValueError(f"template: {e}") from None
        try:
            value = ENVIRONMENT.binop_table[node.operator](left, right)
        except (ArithmeticError, TypeError, ValueError) as e:
            raise ValueError(f"template: {left!r} {node.operator} {right!r}: {type(e).__name__}: {e}") from None
        try:
            _check_size(value, limits)
        except TemplateTooCostly as e:
            raise ValueError(f"template: {e}") from None
        return True, value
    return False, None


def _regex_problem(pattern: Any) -> str | None:
    if not isinstance(pattern, str):
        return "'match' takes a literal pattern, e.g. vars.pin is match('^\\d{4}$')"
    if len(pattern) > 512:
        return "a 'match' pattern is longer than 512 characters"
    try:
        regex.compile(pattern)
    except (regex.error, ValueError, OverflowError, RecursionError) as e:
        return f"'match' pattern {pattern!r} is not a regular expression: {e}"
    return None


def _check_cost(tree: nodes.Template) -> None:
    """The load-time half of the cost bounds: refused blocks, loops, patterns, constant folding."""
    for node in tree.find_all(tuple(_REFUSED_BLOCKS)):
        raise ValueError(f"template: '{_REFUSED_BLOCKS[type(node)]}' is not allowed")
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            raise ValueError("template: recursive loops are not allowed in a flow")
    for test in tree.find_all(nodes.Test):
        if test.name == "match":
            pattern = test.args[0].value if test.args and isinstance(test.args[0], nodes.Const) else None
            problem = _regex_problem(pattern)
            if problem:
                raise ValueError(f"template: {problem}")
    for operation in tree.find_all(nodes.BinExpr):
        _static_value(operation)


def _check_ast(tree: nodes.Template, allowed_roots: Iterable[str]) -> None:
    """Raise ValueError for anything the static rules above refuse."""
    allowed = set(allowed_roots)
    _check_cost(tree)
    private = [n.attr for n in tree.find_all(nodes.Getattr) if n.attr.startswith("_")]
    private += [
        n.arg.value
        for n in tree.find_all(nodes.Getitem)
        if isinstance(n.arg, nodes.Const) and isinstance(n.arg.value, str) and n.arg.value.startswith("_")
    ]
    if private:
        names = ", ".join(f"'{name}'" for name in reversed(list(dict.fromkeys(private))))
        raise ValueError(f"template: access to {names} is not allowed (names starting with '_' are private)")
    for getattr_node in tree.find_all(nodes.Getattr):
        target = getattr_node.node
        if isinstance(target, nodes.Name) and target.name in ROOT_FIELDS:
            fields = ROOT_FIELDS[target.name]
            if fields is not None and getattr_node.attr not in fields:
                raise ValueError(
                    f"template: '{target.name}' has no field '{getattr_node.attr}'"
                    f"{_did_you_mean(getattr_node.attr, fields)}; it has {', '.join(fields)}"
                )
    for filter_node in tree.find_all(nodes.Filter):
        if filter_node.name not in ENVIRONMENT.filters:
            raise ValueError(
                f"template: unknown filter '{filter_node.name}'{_did_you_mean(filter_node.name, ENVIRONMENT.filters)}"
            )
    for test_node in tree.find_all(nodes.Test):
        if test_node.name not in ENVIRONMENT.tests:
            raise ValueError(
                f"template: unknown test '{test_node.name}'{_did_you_mean(test_node.name, ENVIRONMENT.tests)}"
            )
    tree.set_environment(ENVIRONMENT)
    for name in sorted(meta.find_undeclared_variables(tree)):
        if name not in allowed:
            raise ValueError(
                f"template: unknown name '{name}'{_did_you_mean(name, allowed)}; "
                f"use {', '.join(sorted(allowed))} (e.g. vars.{name})"
            )


def _check_length(source: str, what: str) -> None:
    limit = flow_limits().max_template_chars
    if len(source) > limit:
        raise ValueError(f"{what}: {len(source)} characters; the limit is {limit} (IVR_TEMPLATE_MAX_CHARS)")


@contextlib.contextmanager
def cooperative_compilation() -> Iterator[None]:
    """Within it, this greenlet yields to the others after each template it compiles (flows
    rebuilt on the hub, see `esl_controller.flow_loading`)."""
    token = _COOPERATIVE.set(True)
    try:
        yield
    finally:
        _COOPERATIVE.reset(token)


def _maybe_yield(_weight: int) -> None:
    if _COOPERATIVE.get():
        import gevent

        gevent.sleep(0)


# A render that spent more than this many steps lets the other greenlets run before the call goes on.
_YIELD_AFTER_STEPS = 200


def _after_render(budget: _Budget) -> None:
    if budget.spent > _YIELD_AFTER_STEPS:
        import gevent

        try:
            gevent.sleep(0)
        except gevent.hub.BlockingSwitchOutError:   # rendered from the hub itself: nothing to yield to
            pass


def _syntax_message(error: TemplateSyntaxError) -> str:
    return f"template syntax error: {error.message} (template line {error.lineno})"


class Template:
    """A checked, compiled template string. `str(t)` is its source."""

    __slots__ = ("_compiled", "is_static", "source")

    def __init__(self, source: str, *, extra_roots: Iterable[str] = ()) -> None:
        self.source = source
        _check_length(source, "template")
        try:
            tree = ENVIRONMENT.parse(source)
            _check_ast(tree, [*ROOT_FIELDS, *extra_roots])
            self.is_static = all(
                isinstance(child, nodes.TemplateData)
                for output in tree.body
                if isinstance(output, nodes.Output)
                for child in output.nodes
            ) and all(isinstance(stmt, nodes.Output) for stmt in tree.body)
            for loop in tree.find_all(nodes.For):   # every loop pays one step per item
                loop.iter = nodes.Filter(loop.iter, "_loop_budget", [], [], None, None, lineno=loop.lineno)
            self._compiled = ENVIRONMENT.from_string(tree)
        except TemplateSyntaxError as e:
            raise ValueError(_syntax_message(e)) from e
        except ValueError:
            raise
        except (TemplateError, RecursionError, MemoryError, OverflowError, TypeError) as e:
            raise ValueError(f"template: {type(e).__name__}: {str(e)[:200]}") from e
        _maybe_yield(1)

    def render(self, context: Mapping[str, Any]) -> str:
        budget = _Budget(flow_limits())
        token = _BUDGET.set(budget)
        try:
            out: list[str] = []
            size = 0
            cap = budget.limits.template_value_chars
            for chunk in self._compiled.generate(context):
                size += len(chunk)
                if size > cap:
                    raise TemplateTooCostly(f"the text is longer than {cap} characters (IVR_TEMPLATE_VALUE_CHARS)")
                out.append(chunk)
            return "".join(out)
        except FlowTemplateError as e:
            raise type(e)(f"template {self.source!r}: {e}") from e
        except TemplateError as e:
            raise FlowTemplateError(f"template {self.source!r}: {e.message or e}") from e
        except Exception as e:
            raise FlowTemplateError(f"template {self.source!r}: {type(e).__name__}: {e}") from e
        finally:
            _BUDGET.reset(token)
            _after_render(budget)

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    @classmethod
    def _validate(cls, value: Any) -> Template:
        if isinstance(value, Template):
            return value
        if isinstance(value, bool) or value is None:
            raise ValueError(f"expected a text, got {value!r}")
        if isinstance(value, int | float):
            value = str(value)
        if not isinstance(value, str):
            raise ValueError(f"expected a text, got {type(value).__name__}")
        return cls(value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "description": "text; may use {{ vars.x }}, {{ caller.number }}, {{ call.uuid }}"}


class Expression:
    """A checked branch condition: a jinja2 expression evaluated in the sandbox."""

    __slots__ = ("_compiled", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        _check_length(source, "condition")
        try:
            parser = Parser(ENVIRONMENT, source, state="variable")
            expr = parser.parse_expression()
            if not parser.stream.eos:
                raise TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)
            _check_ast(nodes.Template([nodes.Output([expr])]), ROOT_FIELDS)
            # As jinja's compile_expression does, from our checked tree.
            body = nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)], lineno=1)
            body.set_environment(ENVIRONMENT)
            self._compiled = TemplateExpression(ENVIRONMENT.from_string(body), False)
        except TemplateSyntaxError as e:
            raise ValueError(f"condition syntax error: {e.message}") from e
        except ValueError:
            raise
        except (TemplateError, RecursionError, MemoryError, OverflowError, TypeError) as e:
            raise ValueError(f"condition: {type(e).__name__}: {str(e)[:200]}") from e
        _maybe_yield(1)

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        budget = _Budget(flow_limits())
        token = _BUDGET.set(budget)
        try:
            return bool(self._compiled(**context))
        except FlowTemplateError as e:
            raise type(e)(f"condition {self.source!r}: {e}") from e
        except TemplateError as e:
            raise FlowTemplateError(f"condition {self.source!r}: {e.message or e}") from e
        except Exception as e:
            raise FlowTemplateError(f"condition {self.source!r}: {type(e).__name__}: {e}") from e
        finally:
            _BUDGET.reset(token)
            _after_render(budget)

    def __str__(self) -> str:
        return self.source

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    @classmethod
    def _validate(cls, value: Any) -> Expression:
        if isinstance(value, Expression):
            return value
        if isinstance(value, bool):
            value = "true" if value else "false"
        if not isinstance(value, str):
            raise ValueError(f"expected a condition (text), got {type(value).__name__}")
        return cls(value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "description": "a condition, e.g. vars.balance | float > 100"}
