"""The providers package's shape: audio, errors, registry, retries and deadlines in the base,
fallback chains, the TTS cache and WAV rendering, the extractive answerer, tenant sets."""

from __future__ import annotations

import os
import pickle
import time
import wave
from pathlib import Path
from typing import Any, ClassVar

import gevent
import numpy as np
import pytest

from providers import registry
from providers.audio import AudioClip, resample
from providers.base import ProviderSettings
from providers.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConfigError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    UnknownProvider,
    error_for_status,
)
from providers.fallback import FallbackTTS
from providers.http import parse_retry_after
from providers.llm.base import ChatMessage, Passage, render_passages
from providers.llm.extractive import ExtractiveLLM
from providers.tenant_set import TenantProviderConfig, TenantProviders
from providers.tts.base import SpeakInstead, TTSProvider, TTSSettings
from providers.tts.cache import TTSCache
from providers.tts.flite import FliteTTS
from providers.tts.render import render_prompt, synthesize_to_wav


def tone(freq: float, rate: int, seconds: float = 0.5, amp: float = 0.5) -> AudioClip:
    t = np.arange(int(rate * seconds)) / rate
    return AudioClip.from_samples(amp * np.sin(2 * np.pi * freq * t), rate)


def peak_hz(clip: AudioClip) -> float:
    x = clip.samples().astype(np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / clip.sample_rate)[np.argmax(spectrum)])


# -- audio ---------------------------------------------------------------------------

@pytest.mark.parametrize("src,dst", [(22050, 8000), (24000, 16000), (8000, 16000), (16000, 8000)])
def test_resample_keeps_pitch_and_length(src: int, dst: int) -> None:
    clip = tone(1000, src).resample(dst)
    assert clip.sample_rate == dst
    assert abs(clip.duration - 0.5) < 0.01
    assert abs(peak_hz(clip) - 1000) < 15


def test_downsampling_removes_what_would_alias() -> None:
    # 6 kHz cannot exist at 8 kHz; without the low-pass it would fold to 2 kHz at full strength.
    loud = tone(6000, 22050).resample(8000).samples().astype(np.float64)
    kept = tone(1000, 22050).resample(8000).samples().astype(np.float64)
    assert np.sqrt(np.mean(loud ** 2)) < 0.05 * np.sqrt(np.mean(kept ** 2))


def test_wav_round_trip_and_atomic_write(tmp_path: Path) -> None:
    clip = tone(440, 8000)
    path = clip.write_wav(tmp_path / "x" / "a.wav")
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
    assert AudioClip.read_wav(path).pcm == clip.pcm
    assert [p.name for p in path.parent.iterdir()] == ["a.wav"]      # no temp file left


def test_wav_reader_mixes_stereo_and_rejects_garbage(tmp_path: Path) -> None:
    stereo = np.stack([np.full(100, 1000, np.int16), np.full(100, 3000, np.int16)], axis=1)
    with wave.open(str(tmp_path / "s.wav"), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(stereo.tobytes())
    mono = AudioClip.read_wav(tmp_path / "s.wav")
    assert mono.sample_rate == 16000 and abs(int(mono.samples()[50]) - 2000) <= 1
    from providers.errors import ProviderBadResponse

    with pytest.raises(ProviderBadResponse):
        AudioClip.from_wav_bytes(b"definitely not RIFF")


def test_resample_of_empty_audio() -> None:
    assert resample(np.zeros(0, np.float32), 8000, 16000).shape == (0,)


# -- errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("status,cls,retryable", [
    (408, ProviderTimeout, True), (429, ProviderRateLimited, True), (500, ProviderUnavailable, True),
    (503, ProviderUnavailable, True), (401, ProviderAuthError, False), (403, ProviderAuthError, False),
    (400, ProviderBadRequest, False), (404, ProviderBadRequest, False), (422, ProviderBadRequest, False)])
def test_status_mapping(status: int, cls: type, retryable: bool) -> None:
    err = error_for_status(status, "x", provider="stt:deepgram")
    assert type(err) is cls and err.retryable is retryable and err.status == status


def test_errors_pickle_with_their_fields() -> None:
    err = pickle.loads(pickle.dumps(ProviderRateLimited("slow down", provider="llm:openai", retry_after=1.5)))
    assert isinstance(err, ProviderRateLimited) and err.retry_after == 1.5 and err.retryable
    assert str(err) == "llm:openai: slow down"


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < (parse_retry_after(http_date) or 0) <= 31


# -- registry ------------------------------------------------------------------------------

def test_unknown_provider_suggests_close_names() -> None:
    with pytest.raises(UnknownProvider) as info:
        registry.build("tts", "eleven-labs")
    assert "did you mean 'elevenlabs'" in str(info.value) and info.value.suggestions == ["elevenlabs"]
    with pytest.raises(UnknownProvider, match="'piper' is a tts provider"):
        registry.resolve("stt", "piper")
    with pytest.raises(UnknownProvider, match="did you mean 'tts'"):
        registry.resolve("ttx", "piper")


def test_aliases_resolve_lazily_to_the_right_kind() -> None:
    for key, target in registry.ALIASES.items():
        kind, name = key.split(":")
        cls = registry.resolve(kind, name)
        assert cls.kind == kind and f"{cls.__module__}:{cls.__name__}" == target
    assert registry.resolve("embeddings", "Sentence-Transformers").name == "sentence_transformers"


def test_validate_settings_gives_one_clear_line() -> None:
    registry.validate_settings("tts", "polly", {"voice": "Joanna", "sample_rate": 16000})
    with pytest.raises(ProviderConfigError) as info:
        registry.validate_settings("tts", "polly", {"sample_rate": 44100, "colour": "blue"})
    text = str(info.value)
    assert text.startswith("tts:polly: settings: ") and "sample_rate" in text and "colour" in text
    with pytest.raises(ProviderConfigError, match="base_url"):
        registry.validate_settings("llm", "openai_compatible", {"model": "llama3"})


def test_missing_secret_is_a_config_error() -> None:
    with pytest.raises(ProviderConfigError, match="api_key"):
        registry.build("llm", "openai", {}, {})


def test_module_class_names_load_plugins() -> None:
    cls = registry.resolve("tts", f"{__name__}:FlakyTTS")
    assert cls is FlakyTTS


# -- base: deadlines and retries ----------------------------------------------------------

class FlakySettings(TTSSettings):
    fail_times: int = 0
    error: str = "unavailable"
    hang: float = 0.0


class FlakyTTS(TTSProvider):
    """A test fake on the real base: fails ``fail_times`` times, then speaks a tone."""

    name: ClassVar[str] = "flaky"
    settings_model: ClassVar[type[ProviderSettings]] = FlakySettings
    settings: FlakySettings

    def _configure(self) -> None:
        self.calls = 0

    def _synthesize(self, text: str, *, voice: str | None, language: str | None, timeout: float) -> Any:
        self.calls += 1
        if self.settings.hang:
            gevent.sleep(self.settings.hang)
        if self.calls <= self.settings.fail_times:
            raise {"unavailable": ProviderUnavailable("down"), "auth": ProviderAuthError("bad key"),
                   "ratelimit": ProviderRateLimited("slow", retry_after=30.0)}[self.settings.error]
        return tone(300, 16000, 0.3)


def test_retryable_errors_are_retried() -> None:
    tts = FlakyTTS({"fail_times": 2, "retries": 2, "backoff": 0.001})
    assert isinstance(tts.synthesize("hi"), AudioClip) and tts.calls == 3


def test_permanent_errors_are_not_retried() -> None:
    tts = FlakyTTS({"fail_times": 1, "retries": 3, "error": "auth"})
    with pytest.raises(ProviderAuthError):
        tts.synthesize("hi")
    assert tts.calls == 1


def test_long_retry_after_is_not_waited_for() -> None:
    tts = FlakyTTS({"fail_times": 1, "retries": 3, "error": "ratelimit", "max_retry_wait": 1.0})
    with pytest.raises(ProviderRateLimited):
        tts.synthesize("hi")
    assert tts.calls == 1


def test_deadline_cuts_a_hanging_attempt() -> None:
    tts = FlakyTTS({"hang": 5.0, "timeout": 0.05, "retries": 1, "backoff": 0.001})
    started = time.monotonic()
    with pytest.raises(ProviderTimeout):
        tts.synthesize("hi")
    assert tts.calls == 2 and time.monotonic() - started < 4.0


# -- fallback, cache and rendering ----------------------------------------------------------

def test_render_caches_per_provider_and_survives_a_new_cache_object(tmp_path: Path) -> None:
    primary = FlakyTTS()
    cache = TTSCache(tmp_path, "acme")
    first = render_prompt(primary, cache, "Welcome to Acme.", sample_rate=8000)
    assert first.path is not None and not first.cached and primary.calls == 1
    clip = AudioClip.read_wav(first.path)
    assert clip.sample_rate == 8000 and abs(clip.duration - 0.3) < 0.01
    again = render_prompt(primary, TTSCache(tmp_path, "acme"), "Welcome to Acme.", sample_rate=8000)
    assert again.cached and again.path == first.path and primary.calls == 1
    other = render_prompt(primary, cache, "Welcome to Acme.", sample_rate=16000)
    assert other.path != first.path and primary.calls == 2


def test_render_uses_a_failing_primarys_cached_prompt(tmp_path: Path) -> None:
    cache = TTSCache(tmp_path, "acme")
    healthy = FlakyTTS()
    render_prompt(healthy, cache, "Press one.")
    down = FlakyTTS({"fail_times": 99, "retries": 0})
    chain = FallbackTTS([down, FliteTTS()])
    result = render_prompt(chain, cache, "Press one.")
    assert result.cached and result.provider == "tts:flaky" and down.calls == 0
    fresh = render_prompt(chain, cache, "Press two.")
    assert fresh.path is None and isinstance(fresh.speak, SpeakInstead) and fresh.speak.text == "Press two."
    assert [(a.provider, a.ok, a.error) for a in fresh.attempts] == [
        ("tts:flaky", False, "ProviderUnavailable"), ("tts:flite", True, "")]


def test_synthesize_to_wav_speaks_when_everything_fails(tmp_path: Path) -> None:
    chain = FallbackTTS([FlakyTTS({"fail_times": 99, "retries": 0})])
    result = synthesize_to_wav(chain, TTSCache(tmp_path, "acme"), "Goodbye.")
    assert isinstance(result, SpeakInstead) and result.engine == "flite" and "ProviderUnavailable" in result.reason


def test_concurrent_renders_of_one_prompt_synthesize_once(tmp_path: Path) -> None:
    slow = FlakyTTS({"hang": 0.2})
    cache = TTSCache(tmp_path, "acme")
    jobs = [gevent.spawn(render_prompt, slow, cache, "Same menu.") for _ in range(5)]
    gevent.joinall(jobs, timeout=10, raise_error=True)
    assert slow.calls == 1 and len({j.value.path for j in jobs}) == 1


def test_cache_evicts_least_recently_used(tmp_path: Path) -> None:
    cache = TTSCache(tmp_path, "acme", max_bytes=2500)
    paths = [cache.put("tts:x", "v", f"text {i}", 8000, b"x" * 1000) for i in range(2)]
    old = time.time() - 100
    os.utime(paths[0], (old, old))
    os.utime(paths[1], (old + 1, old + 1))
    assert cache.get("tts:x", "v", "text 0", 8000) == paths[0]          # a hit refreshes it
    cache.put("tts:x", "v", "text 2", 8000, b"x" * 1000)
    assert cache.get("tts:x", "v", "text 1", 8000) is None
    assert cache.get("tts:x", "v", "text 0", 8000) is not None and cache.size() <= 2500


def test_cache_folders_are_per_tenant_and_checked(tmp_path: Path) -> None:
    a, b = TTSCache(tmp_path, "acme"), TTSCache(tmp_path, "globex")
    a.put("tts:x", "v", "hi", 8000, b"RIFF")
    assert b.get("tts:x", "v", "hi", 8000) is None and a.get("tts:x", "v", "hi", 8000) is not None
    for bad in ("../etc", "a/b", "", ".hidden"):
        with pytest.raises(ProviderConfigError):
            TTSCache(tmp_path, bad)


# -- LLM helpers and the extractive answerer --------------------------------------------------

PASSAGES = (Passage("Parking is free for customers. The garage is on Oak Street.", "parking.md", 0.41),
            Passage("We open at nine on weekdays. On Saturdays we open at ten. We are closed on Sundays.",
                    "hours.md", 0.83))


def test_extractive_reads_the_best_passage() -> None:
    llm = ExtractiveLLM({"max_sentences": 1})
    answer = llm.complete([ChatMessage("user", "When do you open on Saturdays?", passages=PASSAGES)])
    assert answer.text == "On Saturdays we open at ten." and answer.provider == "llm:extractive"
    none = llm.complete([ChatMessage("user", "Hello?")])
    assert none.text == "" and none.finish_reason == "no_answer"


def test_extractive_streams_sentences() -> None:
    chunks = list(ExtractiveLLM({"max_sentences": 2}).stream(
        [{"role": "user", "content": "weekdays hours", "passages": [{"text": PASSAGES[1].text, "score": 0.9}]}]))
    assert [c.text for c in chunks] == ["We open at nine on weekdays. ", "On Saturdays we open at ten."]


def test_passages_are_rendered_for_cloud_models() -> None:
    msg = render_passages(ChatMessage("user", "When?", passages=PASSAGES))
    assert msg.passages == () and "[2] (hours.md) We open at nine" in msg.content


# -- tenant sets -----------------------------------------------------------------------------------

def test_tenant_set_is_built_once_per_version(tmp_path: Path) -> None:
    base = {"tenant": "acme", "tts_cache_dir": str(tmp_path),
            "tts": [{"name": f"{__name__}:FlakyTTS"}, {"name": "flite"}], "stt": [{"name": "pocketsphinx"}],
            "llm": [{"name": "extractive"}, {"name": "openai", "secrets": {"api_key": "sk-secret"}}]}
    config = TenantProviderConfig.model_validate({**base, "version": 1})
    first = TenantProviders.for_config(config)
    assert TenantProviders.for_config(TenantProviderConfig.model_validate({**base, "version": 1})) is first
    second = TenantProviders.for_config(TenantProviderConfig.model_validate({**base, "version": 2}))
    assert second is not first and [p.label for p in second.tts.providers] == ["tts:flaky", "tts:flite"]
    assert second.tts_cache.folder == tmp_path / "acme"
    assert "sk-secret" not in repr(config) and "sk-secret" not in str(config.model_dump())
    TenantProviders.forget("acme")


def test_tenant_config_validation_names_the_entry() -> None:
    config = TenantProviderConfig(tenant="acme",
                                  tts=[{"name": "piper"}, {"name": "polly", "settings": {"engine": "x"}}])
    with pytest.raises(ProviderConfigError, match=r"tts\[1\]: .*engine"):
        config.validate_providers()


def test_warm_up_reports_failures_without_raising(tmp_path: Path) -> None:
    config = TenantProviderConfig(tenant="acme", tts_cache_dir=tmp_path,
                                  tts=[{"name": "coqui", "settings": {"model_path": str(tmp_path)}}])
    with pytest.raises(ProviderConfigError, match="config not found"):
        TenantProviders(config)
    ok = TenantProviders(TenantProviderConfig(tenant="acme", tts_cache_dir=tmp_path, tts=[{"name": "flite"}],
                                              llm=[{"name": "extractive"}], stt=[{"name": f"{__name__}:BrokenSTT"}],
                                              embeddings=[{"name": f"{__name__}:BrokenEmbeddings"}]))
    status = ok.warm_up(timeout=5)
    assert status["tts:flite"] == "ok" and status["llm:extractive"] == "ok"
    assert status["stt:broken"].startswith("ProviderUnavailable")


from providers.embeddings.base import EmbeddingProvider  # noqa: E402
from providers.stt.base import STTProvider, Transcript  # noqa: E402


class BrokenSTT(STTProvider):
    name: ClassVar[str] = "broken"

    def warm_up(self) -> None:
        raise ProviderUnavailable("cannot reach the model server")

    def _transcribe(self, audio: AudioClip, *, language: str | None, hints: list[str] | None,
                    timeout: float) -> Transcript:
        raise ProviderUnavailable("down")


class BrokenEmbeddings(EmbeddingProvider):
    name: ClassVar[str] = "broken"
    default_dimension = 3

    def _embed(self, texts: list[str], *, purpose: Any, timeout: float) -> np.ndarray:
        raise ProviderError("no")


def test_streamed_text_becomes_sentences_as_soon_as_complete() -> None:
    from providers.tts.sentences import sentences

    seen: list[str] = []
    deltas = iter(["We open at ni", "ne. Dr. Smith is in", " on Mondays! Parking", " is free"])

    def feed() -> Any:
        for d in deltas:
            seen.append(d)
            yield d

    out = sentences(feed())
    assert next(out) == "We open at nine."
    assert len(seen) == 2                   # the first sentence came before the rest was written
    assert list(out) == ["Dr. Smith is in on Mondays!", "Parking is free"]
    korean = ["안녕하세요。", "감사합니다。"]
    assert list(sentences(korean, min_chars=1)) == korean
