"""The base every node type builds on: fields common to all nodes, outcomes and edges, prompts.

A node type is a pydantic model (its parameters, validated when the flow loads; unknown keys are
refused) with a `run(ctx) -> outcome` method called at call time. It declares:

- `OUTCOMES`: what `run` may return. `error` is added to every node (the runner routes an
  exception in any node to `error`), and may be left without an edge.
- `TERMINAL`: outcomes that end the flow when they have no edge (`transferred`, `hangup`, …).
- `WAITS_FOR_INPUT`: whether the node waits for the caller (menu, collect, record); a loop in
  the graph must pass through such a node, or it could spin with no caller input.
- `own_edges()`: edges held in node-specific fields (a menu option's `next`, a branch's
  conditions); everything else goes through `next`.

`next` is either a node id (every outcome that needs an edge, except `error`, goes there) or a
mapping outcome → node id.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from ivr_flows.prompt_paths import lexical_problem, url_problem
from ivr_flows.templating import Template

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext

Loc = tuple[str | int, ...]
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_var_name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(f"{value!r} is not a valid variable name (letters, digits and _, not starting with a digit)")
    return value


VarName = Annotated[str, AfterValidator(_check_var_name)]


def did_you_mean(name: str, candidates: Any) -> str:
    close = difflib.get_close_matches(str(name), [str(c) for c in candidates], n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Edge(NamedTuple):
    outcome: str
    target: str
    loc: Loc  # where the target is written, inside the node


@dataclass(frozen=True, slots=True)
class NodeProblem:
    """A load-time problem found by a node's own checks; `loc` is inside the node."""

    loc: Loc
    message: str


@dataclass(frozen=True, slots=True)
class LoadEnv:
    """What the loader knows about the tenant, for load-time checks (None: not checked)."""

    prompt_dir: Path | None = None
    allowed_url_hosts: frozenset[str] | None = None
    known_flows: frozenset[str] | None = None
    flow_timezone: str | None = None


class Prompt:
    """What to play: a text (spoken), `{file: name}` under the prompt folder, or `{url: …}`."""

    __slots__ = ("kind", "template")
    KINDS = ("text", "file", "url")

    def __init__(self, kind: str, template: Template) -> None:
        self.kind = kind
        self.template = template

    def __repr__(self) -> str:
        return f"Prompt({self.kind}={self.template.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Prompt) and (other.kind, other.template) == (self.kind, self.template)

    def __hash__(self) -> int:
        return hash((self.kind, self.template))

    @classmethod
    def _validate(cls, value: Any) -> Prompt:
        if isinstance(value, Prompt):
            return value
        if isinstance(value, dict):
            unknown = [k for k in value if k not in cls.KINDS]
            if unknown:
                raise ValueError(
                    f"unknown prompt key '{unknown[0]}'{did_you_mean(unknown[0], cls.KINDS)}; "
                    "a prompt is a text, {file: name} or {url: address}"
                )
            if len(value) != 1:
                raise ValueError("a prompt takes exactly one of text, file, url")
            ((kind, raw),) = value.items()
            return cls(kind, Template._validate(raw))
        return cls("text", Template._validate(value))

    def problems(self, env: LoadEnv) -> list[str]:
        """Load-time problems of this prompt (only for literal, untemplated file names and URLs)."""
        if self.kind == "text" or not self.template.is_static:
            return []
        value = self.template.source
        if self.kind == "url":
            problem = url_problem(value, env.allowed_url_hosts)
            return [problem] if problem else []
        problem = lexical_problem(value)
        if problem:
            return [problem]
        if env.prompt_dir is not None:
            root = Path(env.prompt_dir).resolve()
            candidate = (root / value).resolve()
            if candidate != root and root not in candidate.parents:
                return [f"prompt file {value!r} is outside the tenant's prompt folder"]
            if not candidate.is_file():
                return [f"prompt file {value!r} does not exist in the tenant's prompt folder"]
        return []

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(cls._validate)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        one_key = [
            {
                "type": "object",
                "properties": {kind: {"type": "string"}},
                "required": [kind],
                "additionalProperties": False,
            }
            for kind in ("file", "url", "text")
        ]
        return {
            "description": "a text to speak, {file: name under the prompt folder} or {url: http(s) address}",
            "anyOf": [{"type": "string"}, *one_key],
        }


class Node(BaseModel):
    """Fields every node has."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        coerce_numbers_to_str=True,
        populate_by_name=True,
        arbitrary_types_allowed=True,
    )

    TYPE: ClassVar[str] = ""
    OUTCOMES: ClassVar[tuple[str, ...]] = ("done",)
    TERMINAL: ClassVar[frozenset[str]] = frozenset()
    WAITS_FOR_INPUT: ClassVar[bool] = False

    type: str
    description: str | None = None
    next: str | dict[str, str] | None = None

    # -- graph ---------------------------------------------------------------------------------
    def outcomes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.OUTCOMES, "error")))

    def optional_outcomes(self) -> frozenset[str]:
        return frozenset({"error"}) | self.TERMINAL

    def terminal_outcomes(self) -> frozenset[str]:
        """Outcomes after which the flow is over for this call (the call left us or ended)."""
        return self.TERMINAL

    def own_edges(self) -> list[Edge]:
        return []

    def edges(self) -> list[Edge]:
        edges = list(self.own_edges())
        if isinstance(self.next, dict):
            edges += [Edge(str(o), t, ("next", str(o))) for o, t in self.next.items()]
        elif isinstance(self.next, str):
            covered = {e.outcome for e in edges}
            optional = self.optional_outcomes()
            edges += [Edge(o, self.next, ("next",)) for o in self.outcomes() if o not in optional and o not in covered]
        return edges

    def edge_map(self) -> dict[str, str]:
        result: dict[str, str] = {}
        for edge in self.edges():
            result.setdefault(edge.outcome, edge.target)
        return result

    # -- load-time checks ----------------------------------------------------------------------
    def prompts(self) -> Iterator[tuple[Loc, Prompt]]:
        """Every prompt of the node with where it is written (top-level fields by default)."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, Prompt):
                yield (name,), value

    def check(self, env: LoadEnv) -> list[NodeProblem]:
        """Checks beyond the field types (override; call super)."""
        problems: list[NodeProblem] = []
        for loc, prompt in self.prompts():
            problems += [NodeProblem(loc, message) for message in prompt.problems(env)]
        return problems

    # -- call time -----------------------------------------------------------------------------
    def run(self, ctx: FlowContext) -> str:
        raise NotImplementedError(f"node type {self.TYPE!r} has no run()")
