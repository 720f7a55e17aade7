"""The TTS capability: ``TTSProvider.synthesize(text, voice=, language=)``.

It returns an ``AudioClip``, or ``SpeakInstead`` when the provider makes no audio itself
and asks the caller to let FreeSWITCH speak the text (``flite``: the zero-dependency last
fallback). Vendors implement ``_synthesize`` only.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import structlog

from providers.audio import AudioClip
from providers.base import Provider, ProviderSettings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SpeakInstead:
    """No audio: the caller should run FreeSWITCH's ``speak`` with this engine and voice."""

    text: str
    engine: str = "flite"
    voice: str = "kal"
    provider: str = "tts:flite"
    reason: str = ""                 # why, when every real provider failed
    attempts: tuple[Any, ...] = field(default=(), compare=False)


class TTSSettings(ProviderSettings):
    voice: str | None = None         # the provider's default voice
    language: str | None = None


class TTSProvider(Provider):
    kind: ClassVar[str] = "tts"
    settings_model: ClassVar[type[ProviderSettings]] = TTSSettings
    settings: TTSSettings
    cacheable: ClassVar[bool] = True   # False for providers whose output must not be cached

    def voice_id(self, voice: str | None = None) -> str:
        """The voice actually used, as it appears in the cache key."""
        return voice or self.settings.voice or "default"

    def synthesize(self, text: str, *, voice: str | None = None, language: str | None = None,
                   timeout: float | None = None) -> AudioClip | SpeakInstead:
        started = time.monotonic()
        lang = language or self.settings.language
        result = self._call("synthesize",
                            lambda t: self._synthesize(text, voice=voice or self.settings.voice,
                                                       language=lang, timeout=t),
                            timeout=timeout)
        if isinstance(result, AudioClip) and not result.provider:
            result = replace(result, provider=self.label)
        log.info("tts.synthesized", provider=self.label, chars=len(text),
                 audio_s=round(result.duration, 2) if isinstance(result, AudioClip) else None,
                 latency_ms=round((time.monotonic() - started) * 1000, 1))
        return result

    @abc.abstractmethod
    def _synthesize(self, text: str, *, voice: str | None, language: str | None,
                    timeout: float) -> AudioClip | SpeakInstead:
        """Do one attempt. Raise ``ProviderError`` subclasses for failures."""
