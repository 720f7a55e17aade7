"""Every cloud vendor against a loopback stub speaking its documented API shape:
success (with the request's shape checked), timeout, 429 then success, 500, malformed
body, auth failure (not retried), and the fallback step each failure causes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from providers_stub_server import Reply, StubServer
from providers_vendor_cases import VENDORS, Vendor, vendor_params

from providers import registry
from providers.audio import AudioClip
from providers.embeddings.base import EmbeddingProvider, Purpose
from providers.errors import (
    AllProvidersFailed,
    ProviderAuthError,
    ProviderBadResponse,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from providers.fallback import FallbackEmbeddings, FallbackLLM, FallbackSTT, FallbackTTS
from providers.llm.extractive import ExtractiveLLM
from providers.stt.base import STTProvider, Transcript
from providers.tts.base import SpeakInstead
from providers.tts.flite import FliteTTS


def make(vendor: Vendor, stub: StubServer, **overrides: Any) -> Any:
    settings = {**vendor.settings(stub.url), "backoff": 0.01, **overrides}
    return registry.build(vendor.kind, vendor.name, settings, vendor.secrets)


class CannedSTT(STTProvider):
    """A test fake on the real base: always hears the same words."""

    name = "canned"

    def _transcribe(self, audio: AudioClip, *, language: str | None, hints: list[str] | None,
                    timeout: float) -> Transcript:
        return Transcript("from the backup", 1.0, self.label, language)


class CountingEmbeddings(EmbeddingProvider):
    """A test fake on the real base: letter counts of a, e, i, o."""

    name = "counting"
    default_dimension = 4

    def _embed(self, texts: list[str], *, purpose: Purpose, timeout: float) -> np.ndarray:
        return np.array([[t.count(c) + 0.1 for c in "aeio"] for t in texts], dtype=np.float32)


@pytest.mark.parametrize("vendor", vendor_params())
def test_success_and_request_shape(vendor: Vendor, stub: StubServer) -> None:
    stub.script("POST", vendor.path, vendor.ok)
    result = vendor.call(make(vendor, stub))
    assert len(stub.calls(vendor.path)) == 1
    vendor.check(result, stub.calls(vendor.path)[0])


@pytest.mark.parametrize("vendor", vendor_params())
def test_timeout_is_provider_timeout(vendor: Vendor, stub: StubServer) -> None:
    stub.script("POST", vendor.path, Reply(delay=1.2, json={}))
    with pytest.raises(ProviderTimeout):
        vendor.call(make(vendor, stub, timeout=0.3, retries=0))


@pytest.mark.parametrize("vendor", vendor_params())
def test_rate_limited_then_retried(vendor: Vendor, stub: StubServer) -> None:
    stub.script("POST", vendor.path, vendor.error(429), vendor.ok)
    result = vendor.call(make(vendor, stub, retries=1))
    assert len(stub.calls(vendor.path)) == 2
    vendor.check(result, stub.calls(vendor.path)[1])


@pytest.mark.parametrize("vendor", vendor_params())
def test_rate_limited_without_retries_left(vendor: Vendor, stub: StubServer) -> None:
    stub.script("POST", vendor.path, vendor.error(429))
    with pytest.raises(ProviderRateLimited):
        vendor.call(make(vendor, stub, retries=0))


@pytest.mark.parametrize("vendor", vendor_params())
def test_server_error_retried_then_unavailable(vendor: Vendor, stub: StubServer) -> None:
    stub.script("POST", vendor.path, vendor.error(500))
    with pytest.raises(ProviderUnavailable) as info:
        vendor.call(make(vendor, stub, retries=1))
    assert info.value.retryable and info.value.provider == f"{vendor.kind}:{vendor.name}"
    assert len(stub.calls(vendor.path)) == 2


@pytest.mark.parametrize("vendor", vendor_params())
def test_malformed_body_is_bad_response(vendor: Vendor, stub: StubServer) -> None:
    stub.script("POST", vendor.path, vendor.malformed)
    with pytest.raises(ProviderBadResponse):
        vendor.call(make(vendor, stub, retries=2))
    assert len(stub.calls(vendor.path)) == 1     # not retryable


@pytest.mark.parametrize("vendor", vendor_params())
def test_auth_failure_is_not_retried(vendor: Vendor, stub: StubServer) -> None:
    stub.script("POST", vendor.path, vendor.error(401))
    with pytest.raises(ProviderAuthError) as info:
        vendor.call(make(vendor, stub, retries=3))
    assert not info.value.retryable
    assert len(stub.calls(vendor.path)) == 1
    assert not any(secret in str(info.value) for secret in vendor.secrets.values())


def _backup(kind: str) -> Any:
    return {"stt": CannedSTT(), "tts": FliteTTS(), "llm": ExtractiveLLM(),
            "embeddings": CountingEmbeddings({"dimension": 4})}[kind]


def _chain(kind: str, providers: list[Any]) -> Any:
    return {"stt": FallbackSTT, "tts": FallbackTTS, "llm": FallbackLLM, "embeddings": FallbackEmbeddings}[kind](
        providers)


@pytest.mark.parametrize("status,error", [(503, "ProviderUnavailable"), (401, "ProviderAuthError")])
@pytest.mark.parametrize("vendor", vendor_params())
def test_failure_falls_back_to_the_next_provider(vendor: Vendor, stub: StubServer, status: int, error: str) -> None:
    stub.script("POST", vendor.path, vendor.error(status))
    chain = _chain(vendor.kind, [make(vendor, stub, retries=0), _backup(vendor.kind)])
    if vendor.kind == "embeddings":
        _, provider, attempts = chain.embed_detailed(["opening hours", "refund policy"])
        assert provider == "embeddings:counting"
    else:
        result = vendor.call(chain)
        attempts = result.attempts
        expected = {"stt": "stt:canned", "tts": "tts:flite", "llm": "llm:extractive"}[vendor.kind]
        assert result.provider == expected
        if vendor.kind == "tts":
            assert isinstance(result, SpeakInstead) and result.text == "Hello there"
    assert [a.provider for a in attempts] == [f"{vendor.kind}:{vendor.name}", attempts[1].provider]
    assert attempts[0].ok is False and attempts[0].error == error
    assert attempts[1].ok is True


def test_chain_of_failing_vendors_reports_every_attempt(stub: StubServer) -> None:
    openai, deepgram = VENDORS[0], VENDORS[1]
    stub.script("POST", openai.path, openai.error(500))
    stub.script("POST", deepgram.path, deepgram.error(401))
    chain = FallbackSTT([make(openai, stub, retries=0), make(deepgram, stub, retries=0)])
    with pytest.raises(AllProvidersFailed) as info:
        chain.transcribe(AudioClip(b"\0\0" * 800, 8000))
    assert [(a.provider, a.error) for a in info.value.attempts] == [
        ("stt:openai", "ProviderUnavailable"), ("stt:deepgram", "ProviderAuthError")]


def test_circuit_breaker_skips_a_dead_vendor(stub: StubServer) -> None:
    vendor = next(v for v in VENDORS if v.id == "llm-openai")
    stub.script("POST", vendor.path, vendor.error(500))
    chain = FallbackLLM([make(vendor, stub, retries=0), ExtractiveLLM()], failure_threshold=2, cooldown=60)
    for _ in range(4):
        assert chain.complete([{"role": "user", "content": "hi"}]).provider == "llm:extractive"
    assert len(stub.calls(vendor.path)) == 2        # skipped after two failures
    last = chain.complete([{"role": "user", "content": "hi"}])
    assert last.attempts[0].error == "CircuitOpen"
