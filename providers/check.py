"""What ``ivr providers test`` runs: each provider exercised once, with its latency.

- TTS: synthesize a phrase; STT: transcribe that synthesized phrase back at 8 kHz (hinted with the
  phrase) and say whether the words came back; LLM: ask a short question; embeddings:
  embed two related sentences and one unrelated, and check the related pair is closer.
``check_tenant`` runs these for every provider in every chain of a ``TenantProviders``.
Nothing here raises for a provider failure: the result says what went wrong.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from providers.audio import AudioClip
from providers.embeddings.base import EmbeddingProvider
from providers.errors import ProviderError
from providers.llm.base import ChatMessage, LLMProvider
from providers.stt.base import STTProvider
from providers.tenant_set import TenantProviders
from providers.tts.base import SpeakInstead, TTSProvider

PHRASE = "Press one for sales or say support"
QUESTION = "Reply with one word: ready?"


@dataclass(frozen=True, slots=True)
class CheckResult:
    kind: str
    provider: str
    ok: bool
    latency_ms: float
    detail: str = ""


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _failure(kind: str, label: str, started: float, e: Exception) -> CheckResult:
    text = e.message if isinstance(e, ProviderError) else str(e)
    return CheckResult(kind, label, False, _ms(started), f"{type(e).__name__}: {text}"[:300])


def check_tts(tts: TTSProvider, text: str = PHRASE) -> tuple[CheckResult, AudioClip | None]:
    started = time.monotonic()
    try:
        result = tts.synthesize(text)
    except Exception as e:
        return _failure("tts", tts.label, started, e), None
    if isinstance(result, SpeakInstead):
        return CheckResult("tts", tts.label, True, _ms(started), "FreeSWITCH speak (no audio here)"), None
    ok = result.duration > 0.2
    return CheckResult("tts", tts.label, ok, _ms(started),
                       f"{result.duration:.2f}s of audio at {result.sample_rate} Hz"), result


def espeak_clip(text: str, voice: str = "en-us") -> AudioClip | None:
    """Speech from espeak-ng when it is installed (the STT check's fallback source)."""
    try:
        out = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True,
                             timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return AudioClip.from_wav_bytes(out)


def check_stt(stt: STTProvider, audio: AudioClip | None, expected: str = PHRASE,
              language: str | None = None) -> CheckResult:
    if audio is None:
        return CheckResult("stt", stt.label, False, 0.0, "no speech to transcribe (no TTS audio, no espeak-ng)")
    words = re.findall(r"[a-z']+", expected.lower())
    started = time.monotonic()
    try:
        result = stt.transcribe(audio.resample(8000), language=language, hints=[expected])
    except Exception as e:
        return _failure("stt", stt.label, started, e)
    heard = set(re.findall(r"[a-z']+", result.text.lower()))
    hit = len(heard & set(words)) / max(1, len(set(words)))
    return CheckResult("stt", stt.label, hit >= 0.5, _ms(started),
                       f"heard {result.text!r} ({hit:.0%} of the words)")


def check_llm(llm: LLMProvider, question: str = QUESTION) -> CheckResult:
    from providers.llm.base import Passage

    started = time.monotonic()
    messages = [ChatMessage("user", question, passages=(Passage("Ready. The assistant is ready.", "check"),))]
    try:
        result = llm.complete(messages)
    except Exception as e:
        return _failure("llm", llm.label, started, e)
    return CheckResult("llm", llm.label, bool(result.text.strip()), _ms(started), f"answered {result.text[:80]!r}")


def check_embeddings(embeddings: EmbeddingProvider) -> CheckResult:
    started = time.monotonic()
    texts = ["What time do you open?", "Our opening hours are nine to five.", "The invoice was paid twice."]
    try:
        v = embeddings.embed(texts)
    except Exception as e:
        return _failure("embeddings", embeddings.label, started, e)
    related, unrelated = float(np.dot(v[0], v[1])), float(np.dot(v[0], v[2]))
    return CheckResult("embeddings", embeddings.label, related > unrelated, _ms(started),
                       f"dimension {v.shape[1]}, related {related:.2f} > unrelated {unrelated:.2f}")


def check_tenant(tp: TenantProviders, kinds: Collection[str] | None = None) -> list[CheckResult]:
    """Every provider of the tenant (or of ``kinds``), one check each. STT hears the first
    audio a TTS provider made (espeak-ng's when none did)."""
    wanted = set(kinds or ("tts", "stt", "llm", "embeddings"))
    results: list[CheckResult] = []
    speech: AudioClip | None = None
    if wanted & {"tts", "stt"}:
        for tts in tp.tts.providers:
            result, clip = check_tts(tts)
            if "tts" in wanted:
                results.append(result)
            speech = speech or clip
    if "stt" in wanted:
        speech = speech or espeak_clip(PHRASE)
        results.extend(check_stt(stt, speech) for stt in tp.stt.providers)
    if "llm" in wanted:
        results.extend(check_llm(llm) for llm in tp.llm.providers)
    if "embeddings" in wanted:
        results.extend(check_embeddings(e) for e in tp.embeddings.providers)
    return results
