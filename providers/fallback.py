"""Fallback: a provider that wraps an ordered chain of providers of the same kind.

``FallbackSTT``, ``FallbackTTS``, ``FallbackLLM`` and ``FallbackEmbeddings`` are real
providers of their kind, so a caller cannot tell a chain from a single provider, except
that results say who answered (``provider``) and what happened before (``attempts``: one
``Attempt`` per provider tried, with the error class and message). That goes into the
call record.

Rules:
- Each provider keeps its own deadline and retries; the chain moves on after *any*
  failure (retryable or not, and unexpected exceptions too: a bug in one vendor module
  must not silence the call).
- A circuit breaker per provider: after ``failure_threshold`` consecutive failures it is
  skipped for ``cooldown`` seconds, so a dead vendor costs one timeout, not one per call.
  If every provider is skipped, all are tried anyway.
- TTS: an explicit ``voice`` goes to the first provider only (voices are vendor-specific);
  the others use their configured voice.
- LLM streams switch providers only before the first chunk; a failure after that is raised.
- Embeddings: every provider in the chain must have the same dimension (vectors from
  different models do not share an index), checked at construction when known.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
import structlog

from providers.audio import AudioClip
from providers.base import Attempt, Provider
from providers.embeddings.base import EmbeddingProvider, Purpose
from providers.errors import AllProvidersFailed, ProviderConfigError, ProviderError
from providers.llm.base import (
    ChatMessage,
    LLMChunk,
    LLMProvider,
    LLMResponse,
    MessageLike,
    ToolSpec,
    coerce_messages,
)
from providers.stt.base import STTProvider, Transcript
from providers.stt.stream import ChainSTTStream, STTStream
from providers.tts.base import SpeakInstead, TTSProvider

log = structlog.get_logger(__name__)

P = TypeVar("P", bound=Provider)
R = TypeVar("R")


@dataclass(slots=True)
class _Health:
    failures: int = 0
    open_until: float = 0.0


class FallbackChain(Generic[P]):
    """Try providers in order; remember which are failing."""

    def __init__(self, providers: Sequence[P], *, failure_threshold: int = 3, cooldown: float = 30.0) -> None:
        if not providers:
            raise ProviderConfigError("a fallback chain needs at least one provider")
        self.providers = list(providers)
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._health = [_Health() for _ in self.providers]

    def order(self) -> list[tuple[int, P, bool]]:
        """``(index, provider, skipped)`` in chain order; if all are skipped, none is.

        Skipped: a provider whose circuit is open, and one whose model is still loading when a later
        provider can serve (`providers.readiness`): a caller never waits on a warm-up.
        """
        from providers.readiness import is_loading

        now = time.monotonic()
        skipped = [self._health[i].open_until > now for i in range(len(self.providers))]
        if all(skipped):
            skipped = [False] * len(skipped)
        loading = [is_loading(p) for p in self.providers]
        for i in range(len(self.providers)):
            if not skipped[i] and loading[i] and any(
                    not skipped[j] and not loading[j] for j in range(i + 1, len(self.providers))):
                skipped[i] = True
        return [(i, p, skip) for (i, p), skip in zip(enumerate(self.providers), skipped, strict=True)]

    def skip_reason(self, index: int) -> tuple[str, str]:
        """Why `order` skipped this provider: (error name, detail) for its `Attempt`."""
        from providers.readiness import is_loading

        if is_loading(self.providers[index]) and self._health[index].open_until <= time.monotonic():
            return "Loading", "its model is still loading; a later provider served"
        return "CircuitOpen", f"skipped after {self._health[index].failures} failures"

    def succeeded(self, index: int) -> None:
        self._health[index] = _Health()

    def failed(self, index: int) -> None:
        h = self._health[index]
        h.failures += 1
        if h.failures >= self.failure_threshold:
            h.open_until = time.monotonic() + self.cooldown
            log.warning("provider.circuit_open", provider=self.providers[index].label,
                        failures=h.failures, cooldown=self.cooldown)

    def run(self, op: str, fn: Callable[[int, P], R]) -> tuple[R, P, tuple[Attempt, ...]]:
        """``fn(index, provider)`` on each provider until one succeeds."""
        attempts: list[Attempt] = []
        for index, provider, skipped in self.order():
            if skipped:
                attempts.append(Attempt(provider.label, False, 0.0, *self.skip_reason(index)))
                continue
            started = time.monotonic()
            try:
                result = fn(index, provider)
            except Exception as e:
                attempts.append(self._failure(index, provider, e, started, op))
                continue
            self.succeeded(index)
            attempts.append(Attempt(provider.label, True, _ms(started)))
            return result, provider, tuple(attempts)
        raise AllProvidersFailed(_summary(attempts), attempts=attempts)

    def _failure(self, index: int, provider: P, e: Exception, started: float, op: str) -> Attempt:
        self.failed(index)
        detail = e.message if isinstance(e, ProviderError) else str(e)[:300]
        if isinstance(e, ProviderError):
            log.warning("provider.fallback", provider=provider.label, op=op, error=type(e).__name__,
                        detail=detail)
        else:
            log.error("provider.fallback_unexpected", provider=provider.label, op=op,
                      error=type(e).__name__, exc_info=e)
        return Attempt(provider.label, False, _ms(started), type(e).__name__, detail)

    def close(self) -> None:
        for p in self.providers:
            p.close()

    def warm_up(self) -> None:
        for p in self.providers:
            p.warm_up()


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _summary(attempts: Sequence[Attempt]) -> str:
    return "all providers failed: " + "; ".join(f"{a.provider} {a.error}: {a.detail}" for a in attempts)


class _FallbackMixin(Generic[P]):
    name: ClassVar[str] = "fallback"
    chain: FallbackChain[P]

    def _init_chain(self, providers: Sequence[P], failure_threshold: int, cooldown: float) -> None:
        self.chain = FallbackChain(providers, failure_threshold=failure_threshold, cooldown=cooldown)

    @property
    def providers(self) -> list[P]:
        return self.chain.providers

    def warm_up(self) -> None:
        self.chain.warm_up()

    def close(self) -> None:
        self.chain.close()


class FallbackSTT(_FallbackMixin[STTProvider], STTProvider):
    def __init__(self, providers: Sequence[STTProvider], *, failure_threshold: int = 3,
                 cooldown: float = 30.0) -> None:
        super().__init__()
        self._init_chain(providers, failure_threshold, cooldown)

    def transcribe(self, audio: AudioClip, *, language: str | None = None,
                   hints: list[str] | None = None, timeout: float | None = None) -> Transcript:
        result, _, attempts = self.chain.run(
            "transcribe", lambda _i, p: p.transcribe(audio, language=language, hints=hints, timeout=timeout))
        return replace(result, attempts=attempts)

    def _transcribe(self, audio: AudioClip, *, language: str | None, hints: list[str] | None,
                    timeout: float) -> Transcript:
        return self.transcribe(audio, language=language, hints=hints, timeout=timeout)

    def open_stream(self, sample_rate: int, *, language: str | None = None,
                    hints: list[str] | None = None) -> STTStream:
        return ChainSTTStream(self, sample_rate, language=language, hints=hints)


class FallbackTTS(_FallbackMixin[TTSProvider], TTSProvider):
    def __init__(self, providers: Sequence[TTSProvider], *, failure_threshold: int = 3,
                 cooldown: float = 30.0) -> None:
        super().__init__()
        self._init_chain(providers, failure_threshold, cooldown)

    def synthesize(self, text: str, *, voice: str | None = None, language: str | None = None,
                   timeout: float | None = None) -> AudioClip | SpeakInstead:
        result, _, attempts = self.chain.run(
            "synthesize", lambda i, p: p.synthesize(text, voice=voice if i == 0 else None,
                                                    language=language, timeout=timeout))
        return replace(result, attempts=attempts)

    def _synthesize(self, text: str, *, voice: str | None, language: str | None,
                    timeout: float) -> AudioClip | SpeakInstead:
        return self.synthesize(text, voice=voice, language=language, timeout=timeout)


class FallbackLLM(_FallbackMixin[LLMProvider], LLMProvider):
    def __init__(self, providers: Sequence[LLMProvider], *, failure_threshold: int = 3,
                 cooldown: float = 30.0) -> None:
        super().__init__()
        self._init_chain(providers, failure_threshold, cooldown)

    def complete(self, messages: Sequence[MessageLike], *, tools: Sequence[ToolSpec] | None = None,
                 timeout: float | None = None) -> LLMResponse:
        msgs = coerce_messages(messages)
        result, _, attempts = self.chain.run(
            "complete", lambda _i, p: p.complete(msgs, tools=tools, timeout=timeout))
        return replace(result, attempts=attempts)

    def stream(self, messages: Sequence[MessageLike], *, tools: Sequence[ToolSpec] | None = None,
               timeout: float | None = None) -> Iterator[LLMChunk]:
        msgs = coerce_messages(messages)

        def open_first(_i: int, p: LLMProvider) -> tuple[LLMChunk | None, Iterator[LLMChunk]]:
            it = iter(p.stream(msgs, tools=tools, timeout=timeout))
            return next(it, None), it

        def gen() -> Iterator[LLMChunk]:
            (first, it), _, attempts = self.chain.run("stream", open_first)
            if first is None:
                return
            yield replace(first, attempts=attempts)
            yield from it

        return gen()

    def _stream(self, messages: list[ChatMessage], *, tools: list[ToolSpec],
                timeout: float) -> Iterator[LLMChunk]:
        return self.stream(messages, tools=tools, timeout=timeout)


class FallbackEmbeddings(_FallbackMixin[EmbeddingProvider], EmbeddingProvider):
    def __init__(self, providers: Sequence[EmbeddingProvider], *, failure_threshold: int = 3,
                 cooldown: float = 30.0) -> None:
        super().__init__()
        self._init_chain(providers, failure_threshold, cooldown)
        dims = {d for d in (p.settings.dimension or p.default_dimension for p in providers) if d}
        if len(dims) > 1:
            raise ProviderConfigError(f"embedding providers in one chain must share a dimension, got {sorted(dims)}")

    @property
    def dimension(self) -> int:
        return self.providers[0].dimension

    def embed(self, texts: list[str], *, purpose: Purpose = "document",
              timeout: float | None = None) -> np.ndarray:
        return self.embed_detailed(texts, purpose=purpose, timeout=timeout)[0]

    def embed_detailed(self, texts: list[str], *, purpose: Purpose = "document",
                       timeout: float | None = None) -> tuple[np.ndarray, str, tuple[Attempt, ...]]:
        """The vectors, the provider that made them, and the attempts."""
        result, provider, attempts = self.chain.run(
            "embed", lambda _i, p: p.embed(texts, purpose=purpose, timeout=timeout))
        return result, provider.label, attempts

    def _embed(self, texts: list[str], *, purpose: Purpose, timeout: float) -> Any:
        return self.embed(texts, purpose=purpose, timeout=timeout)
