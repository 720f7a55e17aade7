"""`set`: assign flow variables (templated texts, or literal numbers and booleans).

```yaml
remember: {type: set, vars: {attempts: 0, greeting: "Hello {{ caller.name }}"}, next: menu}
```
Outcomes: `done`, `error` (a template that cannot render, e.g. a variable that is not set).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt

from ivr_flows.nodes.base import Node, VarName
from ivr_flows.templating import Template

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext


class SetNode(Node):
    """Assign variables."""

    TYPE: ClassVar[str] = "set"
    OUTCOMES: ClassVar[tuple[str, ...]] = ("done",)

    type: Literal["set"]
    vars: dict[VarName, StrictBool | StrictInt | StrictFloat | Template | None] = Field(min_length=1)

    def run(self, ctx: FlowContext) -> str:
        values = {
            name: ctx.render(value) if isinstance(value, Template) else value for name, value in self.vars.items()
        }
        ctx.vars.update(values)
        ctx.note(set=sorted(values))
        return "done"
