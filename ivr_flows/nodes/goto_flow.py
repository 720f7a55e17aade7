"""`goto_flow`: continue in another flow of the same tenant (its `start` node).

```yaml
billing: {type: goto_flow, flow: billing-menu, next: {error: operator}}
```
The other flow comes from the context's `flow_loader(name)`; it shares the call's variables
(its own `vars` fill only the ones not set yet) and the step budget, so flows that jump to each
other still stop at the step limit. Outcomes: `entered` (the run goes on in the other flow),
`error` (no loader, or it could not load the flow).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from ivr_flows.call import CallEnded
from ivr_flows.nodes.base import LoadEnv, Node, NodeProblem, did_you_mean

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext


class GotoFlowNode(Node):
    """Jump to another flow."""

    TYPE: ClassVar[str] = "goto_flow"
    OUTCOMES: ClassVar[tuple[str, ...]] = ("entered",)
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"entered"})

    type: Literal["goto_flow"]
    flow: str

    def check(self, env: LoadEnv) -> list[NodeProblem]:
        problems = super().check(env)
        if env.known_flows is not None and self.flow not in env.known_flows:
            problems.append(
                NodeProblem(("flow",), f"no flow named {self.flow!r}{did_you_mean(self.flow, env.known_flows)}")
            )
        return problems

    def run(self, ctx: FlowContext) -> str:
        if ctx.flow_loader is None:
            ctx.log.warning("flow.goto_without_loader", node=ctx.node_id, flow=self.flow)
            return "error"
        try:
            flow = ctx.flow_loader(self.flow)
        except CallEnded:
            raise
        except Exception as e:
            ctx.log.warning("flow.goto_load_failed", node=ctx.node_id, flow=self.flow, error=type(e).__name__)
            return "error"
        ctx.enter_flow(flow)
        ctx.note(flow=self.flow)
        return "entered"
