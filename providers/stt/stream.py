"""Streaming transcription: audio fed while the caller speaks, a transcript of all of it on demand.

``STTProvider.open_stream(sample_rate, language=, hints=) -> STTStream``:

- `STTStream.feed(pcm)` hands over the audio recorded since the last call; it never blocks;
- `STTStream.transcript(timeout=)` is the transcript of everything fed so far. It can be asked
  again after more audio (a caller who paused, then went on: `STTStream.resume` says so as soon
  as they speak again);
- `STTStream.close()` frees what the stream holds (a decoder process, a connection).

This base keeps the audio and transcribes it whole on demand with the provider's
``transcribe``, so every vendor can be used this way. An engine that decodes as the audio
arrives overrides it (``incremental = True``, e.g. `providers.stt.pocketsphinx`): there a
transcript only has to finish a search over audio already processed, so it is ready moments
after the caller stops.

`ChainSTTStream` is what a `FallbackSTT` opens: it streams through the first provider of the
chain and, if that stream fails, transcribes the kept audio with the whole chain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import structlog

from providers.audio import AudioClip
from providers.errors import ProviderError

if TYPE_CHECKING:
    from providers.stt.base import STTProvider, Transcript

log = structlog.get_logger(__name__)


class STTStream:
    """Keeps the audio; `transcript` transcribes all of it with the provider (see the module docstring)."""

    incremental: ClassVar[bool] = False

    def __init__(self, provider: STTProvider, sample_rate: int, *, language: str | None = None,
                 hints: list[str] | None = None) -> None:
        self.provider = provider
        self.sample_rate = sample_rate
        self.language = language
        self.hints = list(hints or [])
        self._pcm = bytearray()
        self.closed = False

    @property
    def audio(self) -> AudioClip:
        """Everything fed so far."""
        return AudioClip(bytes(self._pcm[: len(self._pcm) - len(self._pcm) % 2]), self.sample_rate)

    def feed(self, pcm: bytes) -> None:
        self._pcm += pcm

    def resume(self) -> None:
        """The caller spoke again after a transcript (an incremental stream may hold the audio that
        follows a transcript back until then, or until the next transcript is asked for)."""

    def transcript(self, *, timeout: float) -> Transcript:
        return self.provider.transcribe(self.audio, language=self.language, hints=self.hints or None,
                                        timeout=timeout)

    def close(self) -> None:
        self.closed = True


class ChainSTTStream(STTStream):
    """A fallback chain's stream: the first provider's stream, else the whole chain on the kept audio."""

    def __init__(self, chain: Any, sample_rate: int, *, language: str | None = None,
                 hints: list[str] | None = None) -> None:
        super().__init__(chain, sample_rate, language=language, hints=hints)
        self.inner: STTStream | None = None
        self._index = 0
        for index, provider, skipped in chain.chain.order():
            if not skipped:
                self._index = index
                try:
                    self.inner = provider.open_stream(sample_rate, language=language, hints=hints)
                except ProviderError as e:
                    log.warning("stt.stream_unavailable", provider=provider.label, error=type(e).__name__)
                break

    @property
    def incremental(self) -> bool:  # type: ignore[override]
        return self.inner is not None and self.inner.incremental

    def feed(self, pcm: bytes) -> None:
        super().feed(pcm)
        if self.inner is not None:
            self.inner.feed(pcm)

    def resume(self) -> None:
        if self.inner is not None:
            self.inner.resume()

    def transcript(self, *, timeout: float) -> Transcript:
        if self.inner is not None:
            try:
                return self.inner.transcript(timeout=timeout)
            except ProviderError as e:
                log.warning("stt.stream_failed", provider=self.inner.provider.label, error=type(e).__name__,
                            fallback="chain")
                self.provider.chain.failed(self._index)
                self.inner.close()
                self.inner = None
        return super().transcript(timeout=timeout)

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
        super().close()
