"""The STT capability: ``STTProvider.transcribe(audio, language=, hints=) -> Transcript``, and
``open_stream(...)`` to feed audio while the caller speaks (`providers.stt.stream`).

Vendors implement ``_transcribe`` only; the base adds the deadline, retries and a log line
(the transcript itself is never logged, only its length and confidence).
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import structlog

from providers.audio import AudioClip
from providers.base import Provider, ProviderSettings

if TYPE_CHECKING:
    from providers.stt.stream import STTStream

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Transcript:
    """What was said. ``confidence`` is in [0, 1] when the engine reports one."""

    text: str
    confidence: float | None
    provider: str
    language: str | None = None
    attempts: tuple[Any, ...] = field(default=(), compare=False)

    @property
    def is_empty(self) -> bool:
        return not self.text.strip()


class STTSettings(ProviderSettings):
    language: str | None = None     # default language when the call does not say


class STTProvider(Provider):
    kind: ClassVar[str] = "stt"
    settings_model: ClassVar[type[ProviderSettings]] = STTSettings
    settings: STTSettings

    def transcribe(self, audio: AudioClip, *, language: str | None = None,
                   hints: list[str] | None = None, timeout: float | None = None) -> Transcript:
        """Transcribe ``audio``; ``hints`` are the words/phrases we expect (menu options)."""
        lang = language or self.settings.language
        started = time.monotonic()
        result = self._call("transcribe",
                            lambda t: self._transcribe(audio, language=lang, hints=hints or None, timeout=t),
                            timeout=timeout)
        log.info("stt.transcribed", provider=self.label, audio_s=round(audio.duration, 2),
                 chars=len(result.text), confidence=result.confidence,
                 latency_ms=round((time.monotonic() - started) * 1000, 1))
        return result

    def open_stream(self, sample_rate: int, *, language: str | None = None,
                    hints: list[str] | None = None) -> STTStream:
        """A stream to feed audio as it is recorded (`providers.stt.stream`); this base one
        transcribes the kept audio on demand, engines that decode incrementally override it."""
        from providers.stt.stream import STTStream

        return STTStream(self, sample_rate, language=language or self.settings.language, hints=hints)

    @abc.abstractmethod
    def _transcribe(self, audio: AudioClip, *, language: str | None, hints: list[str] | None,
                    timeout: float) -> Transcript:
        """Do one attempt. Raise ``ProviderError`` subclasses for failures."""
