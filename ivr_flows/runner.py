"""The flow interpreter: run nodes, follow outcomes, record the path; it alone decides what is fatal.

`FlowRunner(flow, ctx).run() -> RunResult`:
- starts at `flow.start` with `ctx.vars` filled from the flow's `vars` (values already set win);
- runs `node.run(ctx) -> outcome` and follows the node's edge for that outcome; an outcome with
  no edge ends the run with that outcome (`transferred`, `hangup`, `error`, …);
- `CallEnded` raised anywhere unwinds the run: outcome `caller_hangup` (logged at INFO, not an
  error);
- any other exception in a node takes the node's `error` edge if it has one, else ends the run
  with outcome `error` (logged with the exception type, `RunResult.error` holds the message);
- `goto_flow` continues in another flow with the same vars and the same step budget;
- at most `step_limit` nodes run (default 200): then outcome `step_limit`, so no flow spins forever.

`RunResult` holds the final outcome, the path (flow, node id, type, outcome, start offset and
duration in ms, per-node facts such as menu attempts), the final vars and the recordings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ivr_flows.call import CallEnded
from ivr_flows.context import FlowContext, Recording
from ivr_flows.flow import Flow

DEFAULT_STEP_LIMIT = 200


@dataclass(slots=True)
class Step:
    flow: str
    node: str
    type: str
    outcome: str
    start_ms: int
    duration_ms: int
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "flow": self.flow,
            "node": self.node,
            "type": self.type,
            "outcome": self.outcome,
            "start_ms": self.start_ms,
            "duration_ms": self.duration_ms,
            "detail": dict(self.detail),
        }


@dataclass(slots=True)
class RunResult:
    outcome: str
    steps: list[Step]
    vars: dict[str, Any]
    recordings: list[Recording]
    flow: str
    last_node: str | None = None
    error: str | None = None
    duration_ms: int = 0

    @property
    def path(self) -> list[str]:
        return [s.node for s in self.steps]

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "flow": self.flow,
            "last_node": self.last_node,
            "error": self.error,
            "duration_ms": self.duration_ms,
            "steps": [s.as_dict() for s in self.steps],
            "vars": dict(self.vars),
            "recordings": [
                {
                    "node": r.node,
                    "path": r.path,
                    "duration_ms": r.duration_ms,
                    "stop": r.stop,
                    "transcript": r.transcript,
                }
                for r in self.recordings
            ],
        }


class FlowRunner:
    """Runs one flow for one call."""

    def __init__(self, flow: Flow, ctx: FlowContext, *, step_limit: int = DEFAULT_STEP_LIMIT) -> None:
        if step_limit < 1:
            raise ValueError("step_limit must be at least 1")
        self.flow = flow
        self.ctx = ctx
        self.step_limit = step_limit

    def _enter(self, flow: Flow) -> None:
        self.ctx.flow = flow
        for name, value in flow.vars.items():
            self.ctx.vars.setdefault(name, value)

    def run(self) -> RunResult:
        ctx = self.ctx
        log = ctx.log
        began = ctx.monotonic()
        steps: list[Step] = []
        flow = self.flow
        self._enter(flow)
        node_id: str | None = flow.start
        outcome = "error"
        error: str | None = None
        last: str | None = None
        log.info("flow.start", flow=flow.name, start=flow.start)
        while node_id is not None:
            if len(steps) >= self.step_limit:
                outcome = "step_limit"
                log.warning("flow.step_limit", flow=flow.name, node=node_id, limit=self.step_limit)
                break
            node = flow.nodes[node_id]
            last = node_id
            ctx.node_id = node_id
            ctx.step_detail = {}
            ctx.pending_flow = None
            started = ctx.monotonic()
            hung_up = False
            try:
                outcome = node.run(ctx)
            except CallEnded:
                outcome = "caller_hangup"
                hung_up = True
            except Exception as e:
                outcome = "error"
                error = f"{type(e).__name__}: {e}"
                ctx.step_detail["error"] = type(e).__name__
                log.error(
                    "flow.node_failed",
                    flow=flow.name,
                    node=node_id,
                    type=node.TYPE,
                    error=type(e).__name__,
                    exc_info=True,
                )
            finished = ctx.monotonic()
            steps.append(
                Step(
                    flow.name,
                    node_id,
                    node.TYPE,
                    outcome,
                    round((started - began) * 1000),
                    round((finished - started) * 1000),
                    dict(ctx.step_detail),
                )
            )
            log.debug("flow.step", flow=flow.name, node=node_id, type=node.TYPE, outcome=outcome)
            if hung_up:
                log.info("flow.caller_hangup", flow=flow.name, node=node_id)
                break
            if ctx.pending_flow is not None:
                flow = ctx.pending_flow
                ctx.pending_flow = None
                self._enter(flow)
                node_id = flow.start
                log.info("flow.enter", flow=flow.name, start=flow.start)
                continue
            next_id = flow.next_node(node_id, outcome)
            if next_id is not None and next_id not in flow.nodes:
                error = f"node {node_id!r} outcome {outcome!r} leads to missing node {next_id!r}"
                outcome = "error"
                next_id = None
            if next_id is not None and outcome == "error":
                error = None  # handled by the flow's own error edge
            node_id = next_id
        duration = round((ctx.monotonic() - began) * 1000)
        log.info("flow.end", flow=flow.name, outcome=outcome, node=last, steps=len(steps))
        return RunResult(
            outcome=outcome,
            steps=steps,
            vars=dict(ctx.vars),
            recordings=list(ctx.recordings),
            flow=flow.name,
            last_node=last,
            error=error,
            duration_ms=duration,
        )
