"""Test doubles for flow tests: a scripted `Call`, speech services, a list logger, a context factory.

`FakeCall` implements the `ivr_flows.call.Call` protocol: every method records what it was
asked, then returns the next scripted result for that method (or a default), raising any
exception found in the script instead. `end_at=("record", 1)` makes the first `record` raise
`CallEnded`; once the caller is gone every method raises `CallEnded`, like the real session.
"""

from __future__ import annotations

import datetime as dt
import wave
from collections import defaultdict, deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ivr_flows.call import (
    BridgeResult,
    CallEnded,
    CallInfo,
    DigitsResult,
    DigitsStatus,
    PlaybackResult,
    PlaybackStop,
    RecordResult,
    RecordStop,
)
from ivr_flows.context import FlowContext

UTC = dt.UTC


SPEECH = Path(__file__).resolve().parents[1] / "fixtures" / "audio" / "caller.wav"   # a caller's voice, 8 kHz


def write_wav(path: str | Path, duration_ms: int, rate: int = 8000, *, speech: bool = False) -> None:
    """A WAV of ``duration_ms``: silence, or (``speech``) the caller's voice of the audio fixtures, looped."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    samples = rate * duration_ms // 1000
    if speech:
        with wave.open(str(SPEECH), "rb") as voice:
            pcm = voice.readframes(voice.getnframes())
        frames = (pcm * (1 + 2 * samples // len(pcm)))[: 2 * samples]
    else:
        frames = b"\x00\x00" * samples
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames)


def digits(value: str) -> DigitsResult:
    return DigitsResult(DigitsStatus.SUCCESS, digits=value)


def no_digits() -> DigitsResult:
    return DigitsResult(DigitsStatus.TIMEOUT)


def invalid_digits(value: str) -> DigitsResult:
    return DigitsResult(DigitsStatus.INVALID, invalid=value)


def cut_by(key: str) -> PlaybackResult:
    return PlaybackResult(PlaybackStop.TERMINATOR, terminator=key)


class FakeCall:
    """A scripted call (implements `ivr_flows.call.Call`)."""

    def __init__(
        self,
        *,
        uuid: str = "0b6e2f3a-call",
        caller: str = "+15550001111",
        caller_name: str = "Ada",
        destination: str = "5000",
        domain: str = "demo.example.com",
        context: str = "public",
        end_at: tuple[str, int] | None = None,
        typeahead: str = "",
        record_ms: int = 3000,
        record_speech: bool = True,
        **scripts: Iterable[Any],
    ) -> None:
        self._info = CallInfo(
            uuid=uuid,
            caller_number=caller,
            caller_name=caller_name,
            destination_number=destination,
            domain_uuid="d-1",
            domain_name=domain,
            context=context,
        )
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.scripts: dict[str, deque[Any]] = defaultdict(deque)
        for name, items in scripts.items():
            self.scripts[name].extend(items)
        self.end_at = end_at
        self.counts: dict[str, int] = defaultdict(int)
        self.gone = False
        self.typeahead = typeahead
        self.variables: dict[str, str] = {}
        self.record_ms = record_ms
        self.record_speech = record_speech

    # -- bookkeeping ---------------------------------------------------------------------------
    def _enter(self, method: str, /, **kwargs: Any) -> Any:
        self.calls.append((method, kwargs))
        if self.gone:
            raise CallEnded("caller gone")
        self.counts[method] += 1
        if self.end_at == (method, self.counts[method]):
            self.gone = True
            raise CallEnded(f"caller hung up during {method}")
        queue = self.scripts.get(method)
        if queue:
            item = queue.popleft()
            if isinstance(item, BaseException):
                if isinstance(item, CallEnded):
                    self.gone = True
                raise item
            return item
        return None

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [kwargs for n, kwargs in self.calls if n == name]

    # -- the protocol --------------------------------------------------------------------------
    @property
    def info(self) -> CallInfo:
        return self._info

    def answer(self) -> None:
        self._enter("answer")

    def playback(self, path: str, *, terminators: str = "", timeout: float | None = None) -> PlaybackResult:
        result = self._enter("playback", path=path, terminators=terminators)
        return result or PlaybackResult(PlaybackStop.COMPLETED)

    def speak(
        self,
        text: str,
        *,
        engine: str = "flite",
        voice: str = "kal",
        terminators: str = "",
        timeout: float | None = None,
    ) -> PlaybackResult:
        result = self._enter("speak", text=text, terminators=terminators)
        return result or PlaybackResult(PlaybackStop.COMPLETED)

    def play_and_get_digits(
        self,
        prompt: str,
        *,
        min_digits: int = 1,
        max_digits: int = 1,
        tries: int = 1,
        timeout_ms: int = 5000,
        terminators: str = "#",
        invalid_prompt: str = "silence_stream://250",
        regex: str = "",
        digit_timeout_ms: int = 3000,
        timeout: float | None = None,
    ) -> DigitsResult:
        result = self._enter(
            "play_and_get_digits",
            prompt=prompt,
            min_digits=min_digits,
            max_digits=max_digits,
            timeout_ms=timeout_ms,
            terminators=terminators,
            digit_timeout_ms=digit_timeout_ms,
        )
        return result or DigitsResult(DigitsStatus.TIMEOUT)

    def record(
        self,
        path: str,
        *,
        max_seconds: int = 60,
        silence_threshold: int = 200,
        silence_seconds: int = 3,
        terminators: str = "#",
        timeout: float | None = None,
        live: bool = False,
    ) -> RecordResult:
        result = self._enter(
            "record", path=path, max_seconds=max_seconds, silence_seconds=silence_seconds, terminators=terminators
        )
        if result is None:
            result = RecordResult(path, self.record_ms, RecordStop.SILENCE)
        if result.path == "":
            result = RecordResult(path, result.duration_ms, result.stop, result.terminator)
        if result.duration_ms:
            # What the caller said: speech a VAD hears (a speech menu listens with one).
            write_wav(result.path, result.duration_ms, speech=self.record_speech)
        return result

    def transfer(self, extension: str, *, dialplan: str = "XML", context: str | None = None) -> None:
        self._enter("transfer", extension=extension, dialplan=dialplan, context=context)

    def bridge(self, target: str, *, timeout: float | None = None, hangup_after_bridge: bool = True) -> BridgeResult:
        result = self._enter("bridge", target=target, timeout=timeout, hangup_after_bridge=hangup_after_bridge)
        return result or BridgeResult(True, "SUCCESS")

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        self._enter("hangup", cause=cause)
        self.gone = True

    def get_variable(self, name: str) -> str | None:
        self._enter("get_variable", name=name)
        return self.variables.get(name)

    def set_variable(self, name: str, value: str) -> None:
        self._enter("set_variable", name=name, value=value)
        self.variables[name] = value

    def read_dtmf(self, timeout: float) -> str | None:
        result = self._enter("read_dtmf", timeout=timeout)
        return result

    def flush_dtmf(self) -> str:
        self._enter("flush_dtmf")
        pending, self.typeahead = self.typeahead, ""
        return pending

    def break_media(self) -> None:
        self._enter("break_media")


class FakeSynthesizer:
    """Writes a WAV per text; `fail=True` raises instead (the say node must fall back to speak)."""

    def __init__(self, folder: Path, *, fail: bool = False) -> None:
        self.folder = folder
        self.fail = fail
        self.requests: list[tuple[str, str, str | None]] = []

    def synthesize(self, text: str, language: str, voice: str | None) -> str:
        self.requests.append((text, language, voice))
        if self.fail:
            raise RuntimeError("tts engine down")
        path = self.folder / f"tts_{len(self.requests)}.wav"
        write_wav(path, 500)
        return str(path)


class FakeRecognizer:
    """Returns scripted transcripts (or raises scripted exceptions); records paths and hints."""

    def __init__(self, *answers: str | BaseException) -> None:
        self.answers = deque(answers)
        self.requests: list[tuple[str, list[str], bool]] = []

    def transcribe(self, wav_path: str, hints: list[str]) -> str:
        self.requests.append((wav_path, list(hints), Path(wav_path).is_file()))
        answer = self.answers.popleft() if self.answers else ""
        if isinstance(answer, BaseException):
            raise answer
        return answer


class ListLogger:
    """A structlog-like logger that keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def _log(self, level: str, event: str, **fields: Any) -> None:
        self.events.append((level, event, fields))

    def debug(self, event: str, **fields: Any) -> None:
        self._log("debug", event, **fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log("error", event, **fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._log("error", event, **fields)

    def find(self, event: str) -> list[tuple[str, dict[str, Any]]]:
        return [(level, fields) for level, name, fields in self.events if name == event]


class StepClock:
    """A monotonic clock that moves one millisecond per reading (deterministic step timings)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.001
        return self.now


def make_ctx(call: FakeCall, *, at: dt.datetime | None = None, **kwargs: Any) -> FlowContext:
    moment = at or dt.datetime(2026, 3, 9, 14, 0, tzinfo=UTC)
    kwargs.setdefault("log", ListLogger())
    kwargs.setdefault("sleep", lambda seconds: None)
    kwargs.setdefault("monotonic", StepClock())
    return FlowContext(call=call, clock=lambda: moment, **kwargs)
