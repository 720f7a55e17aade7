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
`match` (`vars.account is match('^\\d{6}$')`, a full regex match).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import TemplateError
from jinja2.parser import Parser
from jinja2.sandbox import SandboxedEnvironment
from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from ivr_flows.errors import FlowTemplateError

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


def _match(value: Any, pattern: str) -> bool:
    return re.fullmatch(pattern, str(value)) is not None


def _make_environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=_FlowUndefined, autoescape=False, keep_trailing_newline=False)
    env.filters.pop("attr", None)
    env.globals = {"range": env.globals["range"]}  # no cycler/joiner/lipsum/namespace/dict
    env.filters["spell"] = _spell
    env.tests["match"] = _match
    return env


ENVIRONMENT = _make_environment()


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(candidates), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_ast(tree: nodes.Template, allowed_roots: Iterable[str]) -> None:
    """Raise ValueError for anything the static rules above refuse."""
    allowed = set(allowed_roots)
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        raise ValueError(f"template: '{type(node).__name__.lower()}' is not allowed")
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


def _syntax_message(error: TemplateSyntaxError) -> str:
    return f"template syntax error: {error.message} (template line {error.lineno})"


class Template:
    """A checked, compiled template string. `str(t)` is its source."""

    __slots__ = ("_compiled", "is_static", "source")

    def __init__(self, source: str, *, extra_roots: Iterable[str] = ()) -> None:
        self.source = source
        try:
            tree = ENVIRONMENT.parse(source)
        except TemplateSyntaxError as e:
            raise ValueError(_syntax_message(e)) from e
        _check_ast(tree, [*ROOT_FIELDS, *extra_roots])
        self.is_static = all(
            isinstance(child, nodes.TemplateData)
            for output in tree.body
            if isinstance(output, nodes.Output)
            for child in output.nodes
        ) and all(isinstance(stmt, nodes.Output) for stmt in tree.body)
        try:
            self._compiled = ENVIRONMENT.from_string(source)
        except TemplateError as e:  # pragma: no cover - parse already succeeded
            raise ValueError(f"template: {e}") from e

    def render(self, context: Mapping[str, Any]) -> str:
        try:
            return self._compiled.render(context)
        except TemplateError as e:
            raise FlowTemplateError(f"template {self.source!r}: {e.message or e}") from e
        except Exception as e:
            raise FlowTemplateError(f"template {self.source!r}: {type(e).__name__}: {e}") from e

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
        try:
            parser = Parser(ENVIRONMENT, source, state="variable")
            expr = parser.parse_expression()
            if not parser.stream.eos:
                raise TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)
        except TemplateSyntaxError as e:
            raise ValueError(f"condition syntax error: {e.message}") from e
        _check_ast(nodes.Template([nodes.Output([expr])]), ROOT_FIELDS)
        try:
            self._compiled = ENVIRONMENT.compile_expression(source, undefined_to_none=False)
        except TemplateError as e:  # pragma: no cover - parse already succeeded
            raise ValueError(f"condition: {e}") from e

    def evaluate(self, context: Mapping[str, Any]) -> bool:
        try:
            return bool(self._compiled(**context))
        except TemplateError as e:
            raise FlowTemplateError(f"condition {self.source!r}: {e.message or e}") from e
        except Exception as e:
            raise FlowTemplateError(f"condition {self.source!r}: {type(e).__name__}: {e}") from e

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
