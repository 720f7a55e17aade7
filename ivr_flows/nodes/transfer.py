"""`transfer`: hand the call to an extension, or bridge it to a SIP URI / gateway and maybe come back.

```yaml
sales:    {type: transfer, to: "1001"}                       # dialplan XML, context: see below
support:  {type: transfer, to: "1002", dialplan: XML, context: default, next: {error: operator}}
partner:
  type: transfer
  bridge: "sofia/gateway/carrier/+15551234567"
  ring_timeout: 30s              # how long it rings (FreeSWITCH's call_timeout)
  hangup_after_bridge: false     # come back to the flow when the far end hangs up
  channel_vars: {effective_caller_id_name: "IVR"}
  next: {bridged: goodbye, no_answer: voicemail, busy: voicemail, failed: operator}
```

`to` mode: `call.transfer(extension, dialplan, context)`; outcome `transferred` ends the flow.
`context` defaults to the tenant's `transfer_context` when it has one, else to the context the
call is in (FreeSWITCH's `Caller-Context`: `default` on a stock FreeSWITCH, the tenant's domain
on FusionPBX). A context FreeSWITCH has no such extension in hangs the caller up
(NO_ROUTE_DESTINATION); the call record then says `transfer_failed` with that cause. `bridge` mode: `call.bridge`;
`ring_timeout` sets FreeSWITCH's `call_timeout`; the wait for the whole bridge is the session's.
Outcomes `bridged` (ends the flow when `hangup_after_bridge`), `no_answer`, `busy`, `failed`,
so a failed bridge goes on in the flow instead of leaving dead air. Rendered targets are checked
(no spaces, no `{}`/`[]`/`<>`/quotes/`|`/`,`, so a variable cannot inject channel variables or
extra legs; set those with `channel_vars`). Outcome `error` when the target is refused.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from ivr_flows.durations import Duration
from ivr_flows.nodes.base import Node
from ivr_flows.templating import Template

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext

_EXTENSION_RE = re.compile(r"^[0-9A-Za-z*#+_.@-]{1,64}$")
_BRIDGE_RE = re.compile(r"^[^\s{}\[\]<>'\"|,^`\\]{1,256}$")
_CHANNEL_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DIALPLAN_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
BUSY_CAUSES = frozenset({"USER_BUSY", "CALL_REJECTED"})
NO_ANSWER_CAUSES = frozenset(
    {
        "NO_ANSWER",
        "NO_USER_RESPONSE",
        "ALLOTTED_TIMEOUT",
        "ORIGINATOR_CANCEL",
        "PROGRESS_TIMEOUT",
        "RECOVERY_ON_TIMER_EXPIRE",
    }
)


class TransferNode(Node):
    """Transfer to an extension, or bridge to an endpoint."""

    TYPE: ClassVar[str] = "transfer"

    type: Literal["transfer"]
    to: Template | None = None
    dialplan: str = "XML"
    context: Template | None = None
    bridge: Template | None = None
    ring_timeout: Duration = Field(default=30.0, gt=0, le=600)
    hangup_after_bridge: bool = True
    channel_vars: dict[str, Template] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_target(self) -> TransferNode:
        if (self.to is None) == (self.bridge is None):
            raise ValueError("a transfer node takes exactly one of 'to' (an extension) or 'bridge' (an endpoint)")
        if self.bridge is not None and self.context is not None:
            raise ValueError("'context' applies to 'to', not to 'bridge'")
        if not _DIALPLAN_RE.match(self.dialplan):
            raise ValueError(f"dialplan {self.dialplan!r} is not a dialplan name")
        for name in self.channel_vars:
            if not _CHANNEL_VAR_RE.match(name):
                raise ValueError(f"channel variable name {name!r} is not valid")
        return self

    def outcomes(self) -> tuple[str, ...]:
        if self.to is not None:
            return ("transferred", "error")
        return ("bridged", "no_answer", "busy", "failed", "error")

    def optional_outcomes(self) -> frozenset[str]:
        if self.to is not None or self.hangup_after_bridge:
            return frozenset({"error", "transferred", "bridged"})
        return frozenset({"error"})

    def terminal_outcomes(self) -> frozenset[str]:
        if self.to is not None:
            return frozenset({"transferred"})
        return frozenset({"bridged"}) if self.hangup_after_bridge else frozenset()

    def _set_channel_vars(self, ctx: FlowContext) -> None:
        for name, template in self.channel_vars.items():
            value = ctx.render(template)
            if "\n" in value or "\r" in value:
                raise ValueError(f"channel variable {name!r} has a line break")
            ctx.call.set_variable(name, value)

    def run(self, ctx: FlowContext) -> str:
        if self.to is not None:
            extension = ctx.render(self.to).strip()
            if not _EXTENSION_RE.match(extension):
                ctx.log.warning("flow.transfer_refused", node=ctx.node_id, reason="invalid extension")
                return "error"
            context = ctx.render(self.context).strip() if self.context is not None else ""
            context = context or ctx.default_transfer_context()
            if not _DIALPLAN_RE.match(context):
                ctx.log.warning("flow.transfer_refused", node=ctx.node_id, reason="invalid context")
                return "error"
            self._set_channel_vars(ctx)
            ctx.call.transfer(extension, dialplan=self.dialplan, context=context)
            ctx.note(dialplan=self.dialplan, context=context)
            return "transferred"
        assert self.bridge is not None
        target = ctx.render(self.bridge).strip()
        if not _BRIDGE_RE.match(target):
            ctx.log.warning("flow.bridge_refused", node=ctx.node_id, reason="invalid bridge target")
            return "error"
        ctx.call.set_variable("call_timeout", str(max(1, round(self.ring_timeout))))
        self._set_channel_vars(ctx)
        result = ctx.call.bridge(target, hangup_after_bridge=self.hangup_after_bridge)
        cause = (result.disposition or result.hangup_cause or "").upper()
        ctx.note(answered=result.answered, cause=cause)
        if result.answered:
            return "bridged"
        if cause in BUSY_CAUSES or result.hangup_cause.upper() in BUSY_CAUSES:
            return "busy"
        if cause in NO_ANSWER_CAUSES or result.hangup_cause.upper() in NO_ANSWER_CAUSES:
            return "no_answer"
        return "failed"
