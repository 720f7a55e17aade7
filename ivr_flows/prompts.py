"""Playing prompts to the caller, shared by the nodes that talk (say, menu, collect, record, hangup).

- Text is synthesized by the tenant's `Synthesizer` and played; when there is none, or it fails,
  or FreeSWITCH cannot play its file, the text goes to `call.speak` (FreeSWITCH's flite).
- `{file: …}` resolves under the tenant's prompt folder (no escape, checked again here).
- `{url: …}` must be on an allowed host; FreeSWITCH fetches it through `http_cache://`.
- `prompt_and_get_digits` reads DTMF with barge-in over the prompt: with a playable file it is one
  `play_and_get_digits`; for a text spoken by flite it speaks with every key as terminator, then
  reads the rest of the digits (`play_and_get_digits` over a short silence, or `read_dtmf` after a
  key that cut the prompt).

Texts, digits and transcripts are never logged (they may carry personal data).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ivr_flows.call import CallEnded, DigitsResult, DigitsStatus, PlaybackResult, PlaybackStop
from ivr_flows.errors import PromptPathError
from ivr_flows.prompt_paths import resolve_prompt, url_problem

if TYPE_CHECKING:
    from ivr_flows.context import FlowContext
    from ivr_flows.nodes.base import Prompt

DTMF_KEYS = "0123456789*#"
SHORT_SILENCE = "silence_stream://250"
BEEP = "tone_stream://%(500,0,800)"
_FAILED = (PlaybackStop.NOT_FOUND, PlaybackStop.ERROR)


def silence(seconds: float) -> str:
    return f"silence_stream://{max(1, round(seconds * 1000))}"


def synthesize(ctx: FlowContext, text: str, voice: str | None = None) -> str | None:
    """A WAV path for `text` from the tenant's synthesizer, or None (none, or it failed)."""
    if ctx.synthesizer is None:
        return None
    try:
        return ctx.synthesizer.synthesize(text, ctx.language, voice or ctx.tts_voice)
    except CallEnded:
        raise
    except Exception as e:
        ctx.log.warning("flow.tts_failed", node=ctx.node_id, error=type(e).__name__, fallback="speak")
        return None


def speak_text(ctx: FlowContext, text: str, *, voice: str | None = None, terminators: str = "") -> PlaybackResult:
    path = synthesize(ctx, text, voice)
    if path is not None:
        result = ctx.call.playback(path, terminators=terminators)
        if result.stop not in _FAILED:
            return result
        ctx.log.warning("flow.tts_playback_failed", node=ctx.node_id, stop=result.stop.value, fallback="speak")
    return ctx.call.speak(text, terminators=terminators)


def media_path(ctx: FlowContext, prompt: Prompt) -> str:
    """The FreeSWITCH file string of a file or URL prompt (checked against the tenant's rules)."""
    value = ctx.render(prompt.template)
    if prompt.kind == "file":
        return str(resolve_prompt(ctx.prompt_dir, value))
    if prompt.kind == "url":
        problem = url_problem(value, ctx.allowed_url_hosts, resolve=True)   # FreeSWITCH fetches it
        if problem:
            raise PromptPathError(problem)
        return f"http_cache://{value}"
    raise ValueError(f"a {prompt.kind} prompt has no media path")


def play_prompt(ctx: FlowContext, prompt: Prompt, *, terminators: str = "", voice: str | None = None) -> PlaybackResult:
    if prompt.kind == "text":
        return speak_text(ctx, ctx.render(prompt.template), voice=voice, terminators=terminators)
    return ctx.call.playback(media_path(ctx, prompt), terminators=terminators)


def _playable_file(ctx: FlowContext, prompt: Prompt, voice: str | None) -> str | None:
    if prompt.kind == "text":
        return synthesize(ctx, ctx.render(prompt.template), voice)
    return media_path(ctx, prompt)


def _finish(digits: str, *, min_digits: int, terminator: str | None) -> DigitsResult:
    if len(digits) < min_digits:
        return DigitsResult(DigitsStatus.INVALID, invalid=digits, terminator=terminator)
    return DigitsResult(DigitsStatus.SUCCESS, digits=digits, terminator=terminator)


def prompt_and_get_digits(
    ctx: FlowContext,
    prompt: Prompt | None,
    *,
    min_digits: int,
    max_digits: int,
    timeout: float,
    digit_timeout: float,
    terminators: str,
    barge_in: bool = True,
    voice: str | None = None,
    first_digits: str = "",
) -> DigitsResult:
    """Prompt and read up to `max_digits` DTMF digits. `first_digits` are type-ahead already read."""
    call = ctx.call
    digits = first_digits
    if not digits and prompt is not None:
        path = _playable_file(ctx, prompt, voice) if barge_in else None
        if path is not None:
            return call.play_and_get_digits(
                path,
                min_digits=min_digits,
                max_digits=max_digits,
                tries=1,
                timeout_ms=round(timeout * 1000),
                terminators=terminators,
                digit_timeout_ms=round(digit_timeout * 1000),
            )
        played = play_prompt(ctx, prompt, terminators=DTMF_KEYS if barge_in else "", voice=voice)
        if played.stop in _FAILED:
            raise PromptPathError(f"the prompt could not be played ({played.stop.value})")
        if played.stop is PlaybackStop.TERMINATOR and played.terminator:
            digits = played.terminator
    if not digits:
        return call.play_and_get_digits(
            SHORT_SILENCE,
            min_digits=min_digits,
            max_digits=max_digits,
            tries=1,
            timeout_ms=round(timeout * 1000),
            terminators=terminators,
            digit_timeout_ms=round(digit_timeout * 1000),
        )
    if terminators and digits[-1] in terminators:
        return _finish(digits[:-1], min_digits=min_digits, terminator=digits[-1])
    while len(digits) < max_digits:
        digit = call.read_dtmf(digit_timeout)
        if digit is None:
            break
        if terminators and digit in terminators:
            return _finish(digits, min_digits=min_digits, terminator=digit)
        digits += digit
    return _finish(digits, min_digits=min_digits, terminator=None)
