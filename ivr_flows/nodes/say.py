"""`say`: speak a text (the tenant's Synthesizer, else FreeSWITCH's flite through `call.speak`).

```yaml
welcome: {type: say, text: "Welcome to {{ vars.company }}.", next: menu}
```
Fields: `text` (template), `voice` (for the synthesizer), `barge_in` (a key press cuts the text;
the key stays for the next menu when its type-ahead is `keep`). Outcomes: `done`, `error`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from ivr_flows.call import PlaybackStop
from ivr_flows.nodes.base import Node
from ivr_flows.prompts import DTMF_KEYS, speak_text
from ivr_flows.templating import Template

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext


class SayNode(Node):
    """Speak a text."""

    TYPE: ClassVar[str] = "say"
    OUTCOMES: ClassVar[tuple[str, ...]] = ("done",)

    type: Literal["say"]
    text: Template
    voice: str | None = None
    barge_in: bool = False

    def run(self, ctx: FlowContext) -> str:
        text = ctx.render(self.text)
        ctx.ensure_answered()
        result = speak_text(ctx, text, voice=self.voice, terminators=DTMF_KEYS if self.barge_in else "")
        ctx.note(stop=result.stop.value)
        ctx.keep_key(result)
        if result.stop in (PlaybackStop.NOT_FOUND, PlaybackStop.ERROR):
            return "error"
        return "done"
