"""`branch`: the first condition that holds picks the next node; otherwise `default`.

```yaml
route:
  type: branch
  conditions:
    - {if: "vars.balance | float > 1000", next: vip, name: vip}
    - {if: "caller.number.startswith('+5511')", next: sao_paulo}
    - {if: "now.hour < 12", next: morning}
    - {if: "vars.account is match('^9')", next: staff}
  default: menu
```
Conditions are sandboxed jinja2 expressions over `vars`, `caller`, `call` and `now` (the flow's
time zone), checked at load. A variable that is not set is an error (use `vars.x is defined`).
Outcomes: each condition's `name` (default `if_1`, `if_2`, …), `default`, `error`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ivr_flows.nodes.base import Edge, Node
from ivr_flows.templating import Expression

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, coerce_numbers_to_str=True)

    if_: Expression = Field(alias="if")
    next: str
    name: str | None = None


class BranchNode(Node):
    """Pick the next node by conditions."""

    TYPE: ClassVar[str] = "branch"

    type: Literal["branch"]
    conditions: list[Condition] = Field(min_length=1)
    default: str

    @model_validator(mode="after")
    def _unique_names(self) -> BranchNode:
        names = self.condition_names()
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two conditions are named {name!r}")
            if name in ("default", "error"):
                raise ValueError(f"condition name {name!r} is reserved")
        return self

    def condition_names(self) -> list[str]:
        return [c.name or f"if_{i}" for i, c in enumerate(self.conditions, start=1)]

    def outcomes(self) -> tuple[str, ...]:
        return (*self.condition_names(), "default", "error")

    def own_edges(self) -> list[Edge]:
        edges = [
            Edge(name, condition.next, ("conditions", i, "next"))
            for i, (name, condition) in enumerate(zip(self.condition_names(), self.conditions, strict=True))
        ]
        return [*edges, Edge("default", self.default, ("default",))]

    def run(self, ctx: FlowContext) -> str:
        context = ctx.template_context()
        for name, condition in zip(self.condition_names(), self.conditions, strict=True):
            if condition.if_.evaluate(context):
                return name
        return "default"
