"""Speaking an answer while it is being written: sentences → TTS → playback, fillers, barge-in.

`speak_answer(ctx, synthesis, …) -> Spoken` plays what a `Synthesis` renders from a queue fed by
the turn's answer greenlet (`ivr_flows.turn_answer`): ``("say", sentence)`` items, then one
``("done", decision)``. The synthesis greenlet renders each sentence as soon as it arrives (the
tenant's TTS chain through its prompt cache, ``extensions["tts"]``/``["tts_cache"]``; else the
context's `Synthesizer`; else FreeSWITCH ``speak``), while the previous one plays: the caller
hears the first sentence while the rest is still generated and synthesized.

- The caller never waits in silence longer than `max_silence`: when no audio is ready by then
  (counted from `quiet_since`, then from the end of each playback), the `filler` plays
  (at most `max_fillers` times per answer).
- Barge-in: every playback is cut by any DTMF key (``Spoken.barge_in == "dtmf"``; a key pressed
  while nothing plays counts too), and, when a `BargeInMonitor` listens to the caller, by speech
  (``"speech"``, the monitor breaks the media). The rest of the answer is dropped.

`SentenceSplitter` (the secretary engine's, `rag.secretary.sentences`) cuts streamed text into
sentences.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gevent
from gevent.queue import Empty, Queue

from ivr_flows.call import CallEnded, PlaybackStop
from ivr_flows.prompts import DTMF_KEYS
from rag.secretary.sentences import SentenceSplitter

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext
    from ivr_flows.speech_listen import BargeInMonitor

__all__ = ["SentenceSplitter", "Spoken", "Synthesis", "play", "render", "speak_answer"]


@dataclass(slots=True)
class Spoken:
    """What happened while answering."""

    sentences: list[str] = field(default_factory=list)   # the sentences that started playing
    decision: Any = None
    barge_in: str | None = None          # "dtmf" | "speech"
    dtmf: str | None = None
    fillers: int = 0
    first_audio_at: float | None = None  # the first sentence's audio was ready
    first_render_ms: float | None = None # how long the first sentence took to synthesize
    playback_started_at: float | None = None   # the first audio (maybe a filler) started
    answer_started_at: float | None = None     # the answer's first sentence started
    tts_providers: list[str] = field(default_factory=list)
    timed_out: bool = False


@dataclass(slots=True)
class _Audio:
    text: str
    path: str | None
    speak: bool
    provider: str
    ready_at: float
    render_ms: float = 0.0


def render(ctx: FlowContext, text: str, voice: str | None, timeout: float) -> _Audio:
    """A playable file for `text` (or a note to let FreeSWITCH speak it)."""
    tts = ctx.extensions.get("tts")
    if tts is not None:
        from providers.tts.render import render_prompt

        rendered = render_prompt(tts, ctx.extensions.get("tts_cache"), text, voice=voice or ctx.tts_voice,
                                 language=ctx.language, sample_rate=8000, timeout=timeout)
        if rendered.path is not None:
            return _Audio(text, str(rendered.path), False, rendered.provider, time.monotonic())
        return _Audio(text, None, True, rendered.provider, time.monotonic())
    if ctx.synthesizer is not None:
        try:
            path = ctx.synthesizer.synthesize(text, ctx.language, voice or ctx.tts_voice)
            return _Audio(text, path, False, "synthesizer", time.monotonic())
        except CallEnded:
            raise
        except Exception as e:
            ctx.log.warning("flow.tts_failed", node=ctx.node_id, error=type(e).__name__, fallback="speak")
    return _Audio(text, None, True, "speak", time.monotonic())


def play(ctx: FlowContext, audio: _Audio) -> Any:
    if audio.path is not None:
        result = ctx.call.playback(audio.path, terminators=DTMF_KEYS)
        if result.stop not in (PlaybackStop.NOT_FOUND, PlaybackStop.ERROR):
            return result
    return ctx.call.speak(audio.text, terminators=DTMF_KEYS)


class Synthesis:
    """Renders the answer's sentences as they arrive on `events` (a greenlet), into `ready`.

    Started with the answer, possibly before the caller has finished (a preemptive answer): the
    audio waits in `ready` until `speak_answer` plays it; `kill` drops it.
    """

    def __init__(self, ctx: FlowContext, events: Queue, *, voice: str | None = None, tts_timeout: float = 10.0,
                 deadline: float = 30.0) -> None:
        self.ctx = ctx
        self.events = events
        self.voice = voice
        self.tts_timeout = tts_timeout
        self.deadline = deadline
        self.ready: Queue = Queue()
        self.job = gevent.spawn(self._run)

    def _run(self) -> None:
        ctx = self.ctx
        while True:
            kind, value = self.events.get(timeout=self.deadline)
            if kind in ("done", "error"):
                self.ready.put((kind, value))
                return
            try:
                began = time.monotonic()
                audio = render(ctx, value, self.voice, self.tts_timeout)
                audio.render_ms = round((time.monotonic() - began) * 1000, 1)
                self.ready.put(("audio", audio))
            except CallEnded:
                raise
            except Exception as e:
                ctx.log.warning("flow.ask_ai_tts_failed", node=ctx.node_id, error=type(e).__name__)
                self.ready.put(("audio", _Audio(value, None, True, "speak", time.monotonic())))

    def kill(self) -> None:
        self.job.kill(block=False)


def speak_answer(ctx: FlowContext, synthesis: Synthesis, *, quiet_since: float, max_silence: float,
                 filler: str | None, voice: str | None = None, max_fillers: int = 3, tts_timeout: float = 10.0,
                 deadline: float = 30.0, monitor: BargeInMonitor | None = None,
                 before_play: Callable[[], None] | None = None, spoken: Spoken | None = None) -> Spoken:
    """Play the answer's sentences as they come (see the module docstring). `before_play` runs
    before each playback is sent (the barge-in recording must be queued on the channel first:
    FreeSWITCH runs a channel's applications one after the other). Progress goes into `spoken`
    (given, it still tells what was said when the caller hangs up mid-answer)."""
    spoken = spoken if spoken is not None else Spoken()
    ready = synthesis.ready
    synth = synthesis.job

    def played_and_cut(audio: _Audio) -> bool:
        """Play one piece; True when the caller cut it (the answer stops)."""
        if spoken.playback_started_at is None:
            spoken.playback_started_at = time.monotonic()
        if before_play is not None:
            before_play()
        return _barged(play(ctx, audio), spoken, monitor)
    filler_audio: _Audio | None = None
    waited_since = quiet_since
    hard_stop = time.monotonic() + deadline
    try:
        while True:
            now = time.monotonic()
            if now >= hard_stop:
                spoken.timed_out = True
                return spoken
            wait = max(0.0, waited_since + max_silence - now) if filler and spoken.fillers < max_fillers \
                else hard_stop - now
            try:
                kind, value = _next_ready(ctx, ready, min(wait, hard_stop - now))
            except _KeyPressed as key:
                spoken.barge_in, spoken.dtmf = "dtmf", key.digit
                return spoken
            except Empty:
                if synth.ready() and not synth.successful():
                    raise (synth.exception or RuntimeError("the answer's synthesis failed")) from None
                if filler and spoken.fillers < max_fillers and time.monotonic() < hard_stop:
                    if filler_audio is None:
                        filler_audio = render(ctx, filler, voice, tts_timeout)
                    spoken.fillers += 1
                    if played_and_cut(filler_audio):
                        return spoken
                    waited_since = time.monotonic()
                continue
            if kind == "done":
                spoken.decision = value
                return spoken
            if kind == "error":
                raise value
            audio: _Audio = value
            if spoken.first_audio_at is None:
                spoken.first_audio_at = audio.ready_at
                spoken.first_render_ms = audio.render_ms
            spoken.tts_providers.append(audio.provider)
            spoken.sentences.append(audio.text)
            if spoken.answer_started_at is None:
                spoken.answer_started_at = time.monotonic()
            if played_and_cut(audio):
                return spoken
            waited_since = time.monotonic()
    finally:
        synthesis.kill()


class _KeyPressed(Exception):
    def __init__(self, digit: str) -> None:
        super().__init__(digit)
        self.digit = digit


def _next_ready(ctx: FlowContext, ready: Queue, timeout: float) -> Any:
    """The next rendered item; a key pressed while nothing plays raises `_KeyPressed`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ready.get(timeout=max(0.0, min(0.05, deadline - time.monotonic())))
        except Empty:
            digit = ctx.call.read_dtmf(0)
            if digit:
                raise _KeyPressed(digit) from None
            if time.monotonic() >= deadline:
                raise


def _barged(result: Any, spoken: Spoken, monitor: BargeInMonitor | None) -> bool:
    if result.stop is PlaybackStop.TERMINATOR:
        spoken.barge_in, spoken.dtmf = "dtmf", result.terminator
        return True
    if monitor is not None and monitor.triggered:
        spoken.barge_in = "speech"
        return True
    return False
