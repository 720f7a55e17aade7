"""`record`: voicemail. Prompt, beep, record into the tenant's recordings folder, transcribe.

```yaml
voicemail:
  type: record
  prompt: "Leave a message after the tone."
  beep: true                   # tone_stream beep before recording
  max_seconds: 2m
  silence_seconds: 3           # this much silence ends the recording
  terminators: "#"             # a key that ends it
  min_seconds: 1               # shorter than this is `empty`
  transcribe: true             # through the tenant's Recognizer (no Recognizer: no transcript)
  var: voicemail_path          # optional: the file's path into a variable
  transcript_var: voicemail_text
  next: {recorded: thanks, empty: goodbye}
```
Files go to `<recordings folder>/<YYYY-MM-DD>/<call uuid>_<node>_<n>.wav`. Every recording
(path, duration, stop reason, transcript) is kept on the context, and so in the `RunResult`, for
the call record, even when the caller hangs up while recording (then the run ends with
`caller_hangup` after the recording is saved). Outcomes: `recorded`, `empty`, `error`.
"""

from __future__ import annotations

import contextlib
import wave
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, field_validator

from ivr_flows.call import CallEnded, PlaybackStop, RecordResult, RecordStop
from ivr_flows.context import Recording
from ivr_flows.durations import Duration
from ivr_flows.nodes.base import Node, Prompt, VarName
from ivr_flows.prompts import BEEP, DTMF_KEYS, play_prompt

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext


def wav_duration_ms(path: Path) -> int:
    """Duration of a WAV file from its header (0 when it is not a readable WAV)."""
    try:
        with wave.open(str(path), "rb") as wav:
            rate = wav.getframerate()
            return round(wav.getnframes() * 1000 / rate) if rate else 0
    except (OSError, EOFError, wave.Error):
        return 0


class RecordNode(Node):
    """Record the caller (voicemail)."""

    TYPE: ClassVar[str] = "record"
    OUTCOMES: ClassVar[tuple[str, ...]] = ("recorded", "empty")
    WAITS_FOR_INPUT: ClassVar[bool] = True

    type: Literal["record"]
    prompt: Prompt | None = None
    beep: bool = True
    max_seconds: Duration = Field(default=120.0, gt=0, le=3600)
    silence_seconds: Duration = Field(default=3.0, ge=0, le=60)
    silence_threshold: int = Field(default=200, ge=0, le=10000)
    terminators: str = "#"
    min_seconds: Duration = 1.0
    transcribe: bool = False
    var: VarName | None = None
    transcript_var: VarName | None = None

    @field_validator("terminators")
    @classmethod
    def _terminators(cls, value: str) -> str:
        if any(c not in DTMF_KEYS for c in value):
            raise ValueError(f"terminators must be DTMF keys (0-9, *, #), got {value!r}")
        return value

    def _path(self, ctx: FlowContext) -> Path:
        if ctx.recordings_dir is None:
            raise RuntimeError("no recordings folder is configured for this tenant")
        day = ctx.local_now().date().isoformat()
        folder = ctx.recordings_dir / day
        folder.mkdir(parents=True, exist_ok=True)
        uuid = ctx.info.uuid if ctx.info else "call"
        index = sum(1 for r in ctx.recordings if r.node == ctx.node_id) + 1
        return folder / f"{uuid}_{ctx.node_id}_{index}.wav"

    def _keep(self, ctx: FlowContext, result: RecordResult) -> Recording:
        transcript: str | None = None
        if self.transcribe and ctx.recognizer is not None:
            try:
                transcript = ctx.recognizer.transcribe(result.path, [])
            except CallEnded:
                raise
            except Exception as e:
                ctx.log.warning("flow.record_stt_failed", node=ctx.node_id, error=type(e).__name__)
        recording = Recording(
            node=ctx.node_id,
            path=result.path,
            duration_ms=result.duration_ms,
            stop=result.stop.value,
            transcript=transcript,
        )
        ctx.recordings.append(recording)
        if self.var:
            ctx.vars[self.var] = result.path
        if self.transcript_var and transcript is not None:
            ctx.vars[self.transcript_var] = transcript
        ctx.note(duration_ms=result.duration_ms, stop=result.stop.value, transcribed=transcript is not None)
        return recording

    def run(self, ctx: FlowContext) -> str:
        path = self._path(ctx)
        ctx.ensure_answered()
        if self.prompt is not None:
            played = play_prompt(ctx, self.prompt)
            if played.stop in (PlaybackStop.NOT_FOUND, PlaybackStop.ERROR):
                ctx.log.warning("flow.record_prompt_failed", node=ctx.node_id, stop=played.stop.value)
        if self.beep:
            ctx.call.playback(BEEP)
        try:
            result = ctx.call.record(
                str(path),
                max_seconds=max(1, round(self.max_seconds)),
                silence_threshold=self.silence_threshold,
                silence_seconds=round(self.silence_seconds),
                terminators=self.terminators,
            )
        except CallEnded:
            if path.is_file() and wav_duration_ms(path) >= self.min_seconds * 1000:
                self._keep(ctx, RecordResult(str(path), wav_duration_ms(path), RecordStop.HANGUP))
            raise
        if result.duration_ms < self.min_seconds * 1000:
            ctx.note(duration_ms=result.duration_ms, stop=result.stop.value)
            with contextlib.suppress(OSError):
                Path(result.path).unlink(missing_ok=True)
            if result.stop is RecordStop.HANGUP:
                raise CallEnded("caller hung up while recording")
            return "empty"
        self._keep(ctx, result)
        if result.stop is RecordStop.HANGUP:
            raise CallEnded("caller hung up while recording")
        return "recorded"
