"""`play`: play a prompt file from the tenant's prompt folder, or a URL on an allowed host.

```yaml
intro: {type: play, file: "intro.wav", next: menu}
news:  {type: play, url: "https://media.example.com/news.wav", next: menu}
```
A file name is relative to the tenant's prompt folder; `..`, absolute paths and symlinks that
leave the folder are refused at load (literal names) and again at run (after templating).
Outcomes: `done`, `error` (file missing, refused, or FreeSWITCH could not play it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import model_validator

from ivr_flows.call import PlaybackStop
from ivr_flows.nodes.base import Loc, Node, Prompt
from ivr_flows.prompts import DTMF_KEYS, media_path
from ivr_flows.templating import Template

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext


class PlayNode(Node):
    """Play an audio file or URL."""

    TYPE: ClassVar[str] = "play"
    OUTCOMES: ClassVar[tuple[str, ...]] = ("done",)

    type: Literal["play"]
    file: Template | None = None
    url: Template | None = None
    barge_in: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> PlayNode:
        if (self.file is None) == (self.url is None):
            raise ValueError("a play node takes exactly one of 'file' or 'url'")
        return self

    def source(self) -> Prompt:
        if self.file is not None:
            return Prompt("file", self.file)
        assert self.url is not None
        return Prompt("url", self.url)

    def prompts(self) -> Iterator[tuple[Loc, Prompt]]:
        yield ("file" if self.file is not None else "url",), self.source()

    def run(self, ctx: FlowContext) -> str:
        path = media_path(ctx, self.source())
        ctx.ensure_answered()
        result = ctx.call.playback(path, terminators=DTMF_KEYS if self.barge_in else "")
        ctx.note(stop=result.stop.value)
        ctx.keep_key(result)
        if result.stop in (PlaybackStop.NOT_FOUND, PlaybackStop.ERROR):
            return "error"
        return "done"
