"""A call's speech services: the tenant's TTS and STT chains behind `ivr_flows`' protocols.

`CallSpeech` is built per call from the tenant's shared `providers.tenant_set.TenantProviders`
(models and HTTP sessions are shared; only this thin adapter is per call).  It implements
``Synthesizer.synthesize(text, language, voice) -> wav path`` (through the tenant's prompt cache,
8 kHz for FreeSWITCH) and ``Recognizer.transcribe(wav_path, hints) -> text``, and writes down
which provider answered each request, whether the cache served it, the fallback steps and the
latency, for the call record (``usage``).  When the TTS chain ends in flite (or every provider
failed) ``synthesize`` raises `UseSpeak`: the `say` node then uses FreeSWITCH's own ``speak``,
so the caller never hears dead air.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from providers.audio import AudioClip
from providers.tts.base import SpeakInstead
from providers.tts.render import render_prompt


class UseSpeak(Exception):
    """No audio file: speak the text with FreeSWITCH's ``speak`` instead."""


def _attempts(attempts: Any) -> list[dict[str, Any]]:
    out = []
    for a in attempts or ():
        out.append({"provider": a.provider, "ok": a.ok, "ms": round(a.latency_ms), "error": a.error})
    return out


class CallSpeech:
    def __init__(self, providers: Any, *, tts_timeout: float | None = None, stt_timeout: float | None = None) -> None:
        # None: each provider's own (tenant-configured) timeout per attempt.
        self.providers = providers
        self.tts_timeout = tts_timeout
        self.stt_timeout = stt_timeout
        self.usage: list[dict[str, Any]] = []

    def synthesize(self, text: str, language: str, voice: str | None) -> str:
        started = time.monotonic()
        rendered = render_prompt(self.providers.tts, self.providers.tts_cache, text, voice=voice,
                                 language=language, sample_rate=8000, timeout=self.tts_timeout)
        self.usage.append({"kind": "tts", "provider": rendered.provider, "cached": rendered.cached,
                           "ms": round((time.monotonic() - started) * 1000),
                           "fallback": _attempts(rendered.attempts)})
        if rendered.path is None:
            speak: SpeakInstead | None = rendered.speak
            raise UseSpeak(speak.reason if speak is not None else "no audio")
        return str(rendered.path)

    def transcribe(self, wav_path: str, hints: list[str]) -> str:
        started = time.monotonic()
        clip = AudioClip.read_wav(Path(wav_path))
        transcript = self.providers.stt.transcribe(clip, hints=hints or None, timeout=self.stt_timeout)
        self.usage.append({"kind": "stt", "provider": getattr(transcript, "provider", ""),
                           "ms": round((time.monotonic() - started) * 1000),
                           "fallback": _attempts(getattr(transcript, "attempts", ()))})
        return transcript.text
