"""`hangup`: optionally say goodbye, then hang up with a cause.

```yaml
goodbye: {type: hangup, say: "Goodbye.", cause: NORMAL_CLEARING}
```
Outcome `hangup` ends the flow (a hangup node takes no `next`). A goodbye that cannot be spoken
does not stop the hangup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import field_validator

from ivr_flows.call import CallEnded
from ivr_flows.nodes.base import Node, did_you_mean
from ivr_flows.prompts import speak_text
from ivr_flows.templating import Template

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext

# The Q.850 cause names FreeSWITCH accepts that make sense for an IVR to send.
HANGUP_CAUSES = (
    "NORMAL_CLEARING",
    "USER_BUSY",
    "CALL_REJECTED",
    "NO_ANSWER",
    "NO_ROUTE_DESTINATION",
    "UNALLOCATED_NUMBER",
    "NORMAL_TEMPORARY_FAILURE",
    "SERVICE_UNAVAILABLE",
    "NORMAL_UNSPECIFIED",
    "FACILITY_REJECTED",
    "DESTINATION_OUT_OF_ORDER",
    "REQUESTED_CHAN_UNAVAIL",
)


class HangupNode(Node):
    """End the call."""

    TYPE: ClassVar[str] = "hangup"
    OUTCOMES: ClassVar[tuple[str, ...]] = ("hangup",)
    TERMINAL: ClassVar[frozenset[str]] = frozenset({"hangup"})

    type: Literal["hangup"]
    say: Template | None = None
    cause: str = "NORMAL_CLEARING"

    @field_validator("cause")
    @classmethod
    def _known_cause(cls, value: str) -> str:
        if value not in HANGUP_CAUSES:
            raise ValueError(f"unknown hangup cause {value!r}{did_you_mean(value, HANGUP_CAUSES)}")
        return value

    def run(self, ctx: FlowContext) -> str:
        if self.say is not None:
            try:
                ctx.ensure_answered()
                speak_text(ctx, ctx.render(self.say))
            except CallEnded:
                raise
            except Exception as e:
                ctx.log.warning("flow.goodbye_failed", node=ctx.node_id, error=type(e).__name__)
        ctx.call.hangup(self.cause)
        ctx.note(cause=self.cause)
        return "hangup"
