"""`pause`: silence for a while (`silence_stream://` on the call).

```yaml
breathe: {type: pause, duration: 1500ms, next: menu}
```
Outcomes: `done`, `error`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from ivr_flows.call import PlaybackStop
from ivr_flows.durations import Duration
from ivr_flows.nodes.base import Node
from ivr_flows.prompts import silence

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext


class PauseNode(Node):
    """Silence."""

    TYPE: ClassVar[str] = "pause"
    OUTCOMES: ClassVar[tuple[str, ...]] = ("done",)

    type: Literal["pause"]
    duration: Duration

    def run(self, ctx: FlowContext) -> str:
        ctx.ensure_answered()
        result = ctx.call.playback(silence(self.duration))
        if result.stop in (PlaybackStop.NOT_FOUND, PlaybackStop.ERROR):
            return "error"
        return "done"
