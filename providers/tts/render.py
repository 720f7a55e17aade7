"""Text → a WAV FreeSWITCH can play (8 or 16 kHz, mono, 16-bit), through the prompt cache.

``render_prompt`` walks the TTS chain (a ``FallbackTTS`` or a single provider) and, for
each provider in order, first looks in the tenant's cache under that provider's
(label, voice, text, rate); on a miss it synthesizes, converts and stores. So a prompt a
failing primary vendor made yesterday is still played today without calling it, and a
backup vendor's rendering is used only when the primary has neither cache nor answer.
Concurrent renders of the same prompt wait for the first (single flight).

When a provider answers ``SpeakInstead`` (flite), or every provider fails and
``speak_on_failure`` is set, the result is a ``SpeakInstead``: the caller runs FreeSWITCH
``speak`` — the caller never gets dead air from us.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import gevent
import structlog
from gevent.event import AsyncResult

from providers.audio import TELEPHONE_RATES, AudioClip, atomic_write
from providers.base import Attempt
from providers.errors import AllProvidersFailed, ProviderError, ProviderTimeout, ProviderUnavailable
from providers.fallback import FallbackChain, FallbackTTS, _summary
from providers.offload import run_in_thread
from providers.tts.base import SpeakInstead, TTSProvider
from providers.tts.cache import TTSCache

log = structlog.get_logger(__name__)

T = TypeVar("T")
_inflight: dict[str, AsyncResult] = {}


@dataclass(frozen=True, slots=True)
class RenderedPrompt:
    """A playable file (``path``) or an instruction to speak (``speak``)."""

    path: Path | None
    speak: SpeakInstead | None
    provider: str
    cached: bool
    attempts: tuple[Attempt, ...] = field(default=())


def _chain(tts: TTSProvider) -> tuple[list[tuple[int, TTSProvider, bool]], FallbackChain[TTSProvider] | None]:
    if isinstance(tts, FallbackTTS):
        return tts.chain.order(), tts.chain
    return [(0, tts, False)], None


def _store(clip: AudioClip, cache: TTSCache | None, label: str, voice: str, text: str, rate: int) -> Path:
    wav = clip.resample(rate).to_wav_bytes()
    if cache is not None:
        return cache.put(label, voice, text, rate, wav)
    folder = Path(tempfile.gettempdir()) / "ivr-tts"
    folder.mkdir(exist_ok=True)
    path = folder / f"{TTSCache.key(label, voice, text, rate)}.wav"
    atomic_write(path, wav)
    return path


def render_prompt(tts: TTSProvider, cache: TTSCache | None, text: str, *, voice: str | None = None,
                  language: str | None = None, sample_rate: int = 8000, timeout: float | None = None,
                  speak_on_failure: bool = True) -> RenderedPrompt:
    """Render ``text`` for playback; see the module docstring for the order of things."""
    if sample_rate not in TELEPHONE_RATES:
        raise ValueError(f"sample_rate must be one of {TELEPHONE_RATES}")
    order, chain = _chain(tts)
    attempts: list[Attempt] = []
    for index, provider, skipped in order:
        v = voice if index == 0 else None
        voice_id = provider.voice_id(v)
        if provider.cacheable and cache is not None:
            hit = cache.get(provider.label, voice_id, text, sample_rate)
            if hit is not None:
                attempts.append(Attempt(provider.label, True, 0.0, detail="cache hit"))
                return RenderedPrompt(hit, None, provider.label, True, tuple(attempts))
        if skipped:
            error, detail = chain.skip_reason(index) if chain is not None else ("CircuitOpen", "skipped")
            attempts.append(Attempt(provider.label, False, 0.0, error, detail))
            continue
        started = time.monotonic()
        key = f"{cache.folder if cache else ''}|{TTSCache.key(provider.label, voice_id, text, sample_rate)}"
        try:
            result = _single_flight(key, lambda p=provider, v=v, vid=voice_id: _synthesize_one(
                p, cache, text, v, vid, language, sample_rate, timeout), (timeout or provider.settings.timeout) * 3)
        except Exception as e:
            if chain is not None:
                chain.failed(index)
            detail = e.message if isinstance(e, ProviderError) else str(e)[:300]
            attempts.append(Attempt(provider.label, False, round((time.monotonic() - started) * 1000, 1),
                                    type(e).__name__, detail))
            log.warning("tts.render_failed", provider=provider.label, error=type(e).__name__, detail=detail)
            continue
        if chain is not None:
            chain.succeeded(index)
        attempts.append(Attempt(provider.label, True, round((time.monotonic() - started) * 1000, 1)))
        if isinstance(result, SpeakInstead):
            return RenderedPrompt(None, replace(result, attempts=tuple(attempts)), provider.label, False,
                                  tuple(attempts))
        return RenderedPrompt(result, None, provider.label, False, tuple(attempts))
    if not speak_on_failure:
        raise AllProvidersFailed(_summary(attempts), attempts=attempts)
    log.error("tts.all_failed_speaking", attempts=len(attempts))
    speak = SpeakInstead(text=text, provider="tts:flite", reason=_summary(attempts), attempts=tuple(attempts))
    return RenderedPrompt(None, speak, "tts:flite", False, tuple(attempts))


def _synthesize_one(provider: TTSProvider, cache: TTSCache | None, text: str, voice: str | None,
                    voice_id: str, language: str | None, rate: int,
                    timeout: float | None) -> Path | SpeakInstead:
    result = provider.synthesize(text, voice=voice, language=language, timeout=timeout)
    if isinstance(result, SpeakInstead):
        return result
    # Resampling, WAV encoding and the fsync'd cache write are CPU and disk work: off the hub.
    return run_in_thread(_store, result, cache if provider.cacheable else None, provider.label, voice_id, text,
                         rate, timeout=30.0, provider=provider.label)


def _single_flight(key: str, fn: Callable[[], T], wait: float) -> T:
    """Run ``fn`` once for concurrent callers with the same key; others wait for its result."""
    pending = _inflight.get(key)
    if pending is not None:
        try:
            return pending.get(timeout=wait)  # type: ignore[no-any-return]
        except gevent.Timeout:
            raise ProviderTimeout(f"the same prompt was still rendering after {wait:g}s") from None
    pending = _inflight[key] = AsyncResult()
    try:
        value = fn()
    except Exception as e:
        pending.set_exception(e)
        raise
    except BaseException:
        pending.set_exception(ProviderUnavailable("rendering was interrupted"))
        raise
    finally:
        _inflight.pop(key, None)
    pending.set(value)
    return value


def synthesize_to_wav(tts: TTSProvider, cache: TTSCache | None, text: str, *, voice: str | None = None,
                      language: str | None = None, sample_rate: int = 8000,
                      timeout: float | None = None) -> Path | SpeakInstead:
    """A WAV path FreeSWITCH can play, or ``SpeakInstead`` (flite, or everything failed)."""
    rendered = render_prompt(tts, cache, text, voice=voice, language=language, sample_rate=sample_rate,
                             timeout=timeout)
    return rendered.path if rendered.path is not None else rendered.speak  # type: ignore[return-value]
