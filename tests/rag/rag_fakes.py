"""Fakes for the RAG and ask_ai tests, each implementing a real base or protocol of ours:

- `HashEmbeddings` (an `EmbeddingProvider`): bag-of-words vectors, no model, deterministic;
- `ScriptedSTT` (an `STTProvider`): says what the `FakeCall`'s caller is saying now;
- `ToneTTS` (a `TTSProvider`): a quiet tone as long as the text, so playback takes time;
- `FakeCall` (the `ivr_flows.call.Call` protocol, and `BackgroundRecorder`): writes the caller's
  (synthetic, voiced) audio into the recording file progressively, in real time divided by
  `speed`, plays files by their length, and takes DTMF or speech during playback (barge-in).
"""

from __future__ import annotations

import hashlib
import re
import struct
import time
import wave
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gevent
import numpy as np
from gevent.event import Event

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
from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.embeddings.base import EmbeddingProvider, EmbeddingSettings, Purpose
from providers.stt.base import STTProvider, Transcript
from providers.tts.base import SpeakInstead, TTSProvider

RATE = 8000
FRAME = RATE // 50


_STOP = frozenset((
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "is", "are", "be", "do", "does", "you",
    "your", "we", "our", "i", "my", "me", "can", "how", "much", "what", "when", "where", "which", "with", "it",
    "this", "that", "there", "from", "by", "as"))


class HashSettings(EmbeddingSettings):
    model: str = "hash-v1"
    dimension: int | None = 256
    fail: bool = False


class HashEmbeddings(EmbeddingProvider):
    """Words hashed into buckets: texts sharing words are close."""

    name: ClassVar[str] = "hash"
    settings_model: ClassVar[type[ProviderSettings]] = HashSettings
    settings: HashSettings
    default_dimension: ClassVar[int | None] = 256

    def _embed(self, texts: list[str], *, purpose: Purpose, timeout: float) -> np.ndarray:
        if self.settings.fail:
            from providers.errors import ProviderUnavailable

            raise ProviderUnavailable("embedding service down", provider=self.label)
        dim = self.settings.dimension or 256
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                if word in _STOP:
                    continue
                word = word[:-1] if len(word) > 3 and word.endswith("s") else word
                digest = hashlib.sha256(f"{self.settings.model}:{word}".encode()).digest()
                out[row, int.from_bytes(digest[:4], "big") % dim] += 1.0
        return out


class ScriptedSTT(STTProvider):
    """Returns what the caller of `call` is saying (the fake STT cannot hear)."""

    name: ClassVar[str] = "scripted"

    def __init__(self, call: FakeCall) -> None:
        super().__init__()
        self.call = call
        self.requests = 0

    def _transcribe(self, audio: AudioClip, *, language: str | None, hints: list[str] | None,
                    timeout: float) -> Transcript:
        self.requests += 1
        return Transcript(self.call.saying, 0.9, self.label, language)


class ToneTTS(TTSProvider):
    """40 ms of quiet tone per character."""

    name: ClassVar[str] = "tone"

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def _synthesize(self, text: str, *, voice: str | None, language: str | None,
                    timeout: float) -> AudioClip | SpeakInstead:
        self.texts.append(text)
        n = int(0.04 * RATE * max(1, len(text)))
        tone = (np.sin(np.arange(n) * 2 * np.pi * 440 / RATE) * 300).astype("<i2")
        return AudioClip(tone.tobytes(), RATE)


def voiced(seconds: float) -> np.ndarray:
    """A synthetic voiced sound (a gliding harmonic tone with syllable-like envelope) the VAD calls speech."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 140 + 20 * np.sin(2 * np.pi * 3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    sig = sum((1 / k) * np.sin(k * phase) for k in range(1, 20))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return (sig * env / np.abs(sig).max() * 9000).astype("<i2")


@dataclass
class Say:
    """The caller says `text` (as `seconds` of voiced audio) when the next recording starts."""

    text: str
    seconds: float = 1.0


@dataclass
class SayWithPause:
    """The caller says `first`, pauses `gap` seconds, then goes on with `rest` (`saying` follows)."""

    first: str
    rest: str
    first_seconds: float = 0.8
    gap: float = 0.8
    rest_seconds: float = 0.8


@dataclass
class Key:
    """The caller presses a key while being recorded."""

    digit: str


@dataclass
class Quiet:
    """The caller says nothing."""


@dataclass
class Interrupt:
    """During the `nth` playback (1-based), after `after` seconds: press `digit`, or speak."""

    nth: int
    digit: str | None = None
    speech: Say | None = None
    after: float = 0.05


def _header(samples: int) -> bytes:
    data = 2 * samples
    return (b"RIFF" + struct.pack("<I", 36 + data if samples else 0) + b"WAVE" + b"fmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16) + b"data" + struct.pack("<I", data))


@dataclass
class FakeCall:
    """A `Call` whose caller follows a script, in real time divided by `speed`."""

    script: list[Any]
    interrupts: list[Interrupt] = field(default_factory=list)
    speed: float = 20.0
    background: bool = True
    uuid: str = "fake-call-1"
    log: list[tuple[str, str]] = field(default_factory=list)
    saying: str = ""
    hung_up: bool = False
    _break: Event = field(default_factory=Event)
    _playbacks: int = 0
    _bg_paths: dict[str, Any] = field(default_factory=dict)
    _pending_speech: Say | None = None

    @property
    def info(self) -> CallInfo:
        return CallInfo(uuid=self.uuid, caller_number="5551234", destination_number="5000",
                        domain_name="dental.example")

    def answer(self) -> None:
        self.log.append(("answer", ""))

    def _sleep(self, seconds: float) -> bool:
        """Sleep simulated `seconds`; True when break_media cut it."""
        return self._break.wait(seconds / self.speed)

    def playback(self, path: str, *, terminators: str = "", timeout: float | None = None) -> PlaybackResult:
        self._playbacks += 1
        self.log.append(("playback", path))
        with wave.open(path, "rb") as w:
            seconds = w.getnframes() / w.getframerate()
        return self._play(seconds, terminators)

    def _play(self, seconds: float, terminators: str) -> PlaybackResult:
        self._break.clear()
        interrupt = next((i for i in self.interrupts if i.nth == self._playbacks), None)
        if interrupt is not None:
            if self._sleep(min(interrupt.after, seconds)):
                return PlaybackResult(PlaybackStop.BROKEN)
            if interrupt.digit is not None and interrupt.digit in terminators:
                self.log.append(("dtmf", interrupt.digit))
                return PlaybackResult(PlaybackStop.TERMINATOR, interrupt.digit)
            if interrupt.speech is not None:
                self._speak_into_background(interrupt.speech)
            cut = self._sleep(seconds)
            return PlaybackResult(PlaybackStop.BROKEN if cut else PlaybackStop.COMPLETED)
        cut = self._sleep(seconds)
        return PlaybackResult(PlaybackStop.BROKEN if cut else PlaybackStop.COMPLETED)

    def speak(self, text: str, *, engine: str = "flite", voice: str = "kal", terminators: str = "",
              timeout: float | None = None) -> PlaybackResult:
        self._playbacks += 1
        self.log.append(("speak", text))
        return self._play(0.05 * len(text), terminators)

    def play_and_get_digits(self, prompt: str, **kw: Any) -> DigitsResult:
        return DigitsResult(DigitsStatus.TIMEOUT)

    def _write_progressively(self, path: str, audio: np.ndarray, max_seconds: float) -> tuple[int, bool]:
        """Write `audio` then silence, frame by frame, until break_media or max_seconds."""
        self._break.clear()
        written = 0
        total = int(max_seconds * RATE)
        with open(path, "wb") as f:
            f.write(_header(0))
            f.flush()
            while written < total:
                chunk = audio[written:written + FRAME * 5]
                if len(chunk) < FRAME * 5:
                    chunk = np.concatenate([chunk, np.zeros(FRAME * 5 - len(chunk), dtype="<i2")])
                f.write(chunk.astype("<i2").tobytes())
                f.flush()
                written += len(chunk)
                if self._sleep(len(chunk) / RATE):
                    break
            f.seek(0)
            f.write(_header(written))
        return written, written < total

    def record(self, path: str, *, max_seconds: int = 60, silence_threshold: int = 200, silence_seconds: int = 3,
               terminators: str = "#", timeout: float | None = None, live: bool = False) -> RecordResult:
        if self.hung_up:
            raise CallEnded("gone")
        item = self.script.pop(0) if self.script else Quiet()
        if isinstance(item, Key):
            self.log.append(("record", "key"))
            with open(path, "wb") as f:
                f.write(_header(0))
            return RecordResult(path, 0, RecordStop.TERMINATOR, item.digit)
        if isinstance(item, Say):
            self.saying = item.text
            audio = voiced(item.seconds)
        elif isinstance(item, SayWithPause):
            self.saying = item.first
            audio = np.concatenate([voiced(item.first_seconds), np.zeros(int(item.gap * RATE), dtype="<i2"),
                                    voiced(item.rest_seconds)])
            gevent.spawn_later((item.first_seconds + item.gap) / self.speed, setattr, self, "saying",
                               f"{item.first} {item.rest}")
        else:
            self.saying = ""
            audio = np.zeros(0, dtype="<i2")
        if self._pending_speech is not None:   # the caller goes on with what they began over the answer
            self.saying = self._pending_speech.text
            self._pending_speech = None
        self.log.append(("record", self.saying))
        samples, broken = self._write_progressively(path, audio, max_seconds)
        stop = RecordStop.BROKEN if broken else RecordStop.MAX_LENGTH
        return RecordResult(path, samples * 1000 // RATE, stop)

    # BackgroundRecorder --------------------------------------------------------------------
    def start_background_recording(self, path: str) -> None:
        if not self.background:
            raise RuntimeError("no record_session here")
        self.log.append(("record_session", path))
        with open(path, "wb") as f:
            f.write(_header(0))
        self._bg_paths[path] = True

    def _speak_into_background(self, say: Say) -> None:
        self._pending_speech = say
        audio = voiced(say.seconds)
        for path in list(self._bg_paths):
            def feed(p: str = path) -> None:
                with open(p, "ab") as f:
                    for start in range(0, len(audio), FRAME * 5):
                        if p not in self._bg_paths:
                            return
                        f.write(audio[start:start + FRAME * 5].tobytes())
                        f.flush()
                        gevent.sleep(FRAME * 5 / RATE / self.speed)
            gevent.spawn(feed)

    def stop_background_recording(self, path: str) -> None:
        self.log.append(("stop_record_session", path))
        self._bg_paths.pop(path, None)

    # the rest of Call ------------------------------------------------------------------------
    def transfer(self, extension: str, *, dialplan: str = "XML", context: str | None = None) -> None:
        self.log.append(("transfer", extension))

    def bridge(self, target: str, *, timeout: float | None = None, hangup_after_bridge: bool = True) -> BridgeResult:
        return BridgeResult(False)

    def hangup(self, cause: str = "NORMAL_CLEARING") -> None:
        self.hung_up = True

    def get_variable(self, name: str) -> str | None:
        return None

    def set_variable(self, name: str, value: str) -> None:
        self.log.append(("set", f"{name}={value}"))

    def read_dtmf(self, timeout: float) -> str | None:
        time.sleep(0)
        return None

    def flush_dtmf(self) -> str:
        return ""

    def break_media(self) -> None:
        self.log.append(("break_media", ""))
        self._break.set()

    def played(self) -> list[str]:
        return [arg for op, arg in self.log if op in ("playback", "speak")]
