"""STT ``pocketsphinx``: CMU PocketSphinx with the English model the package ships.

Free speech is poor on telephone audio, but a grammar of the expected words is reliable:
when ``hints`` are given we build a JSGF grammar ``[filler*] (hint | hint …) [filler*]``
(the fillers let "I need billing please" match "billing"); without hints the full
language model is used. Audio is resampled to 16 kHz (8 kHz telephone audio upsampled).

Decoding runs in a spawned worker process (``providers.process_pool``), because
pocketsphinx holds the GIL and would stall every call on the hub.

Streaming (`open_stream`): a `PocketsphinxStream` leases a worker of its own from a second pool
(``pocketsphinx-stream``, `stream_workers` processes) for the utterance and decodes the audio as
it is fed, so a transcript is ready moments after the caller stops. With every stream worker
busy (or ``stream_workers: 0``) the stream keeps the audio and decodes it whole on demand, as
the base `STTStream` does; a stream worker that fails does the same.
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import Any, ClassVar

import gevent
import structlog
from gevent.event import AsyncResult, Event

from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.errors import ProviderConfigError, ProviderError, ProviderTimeout
from providers.process_pool import WorkerLease, worker_pool
from providers.stt.base import STTProvider, STTSettings, Transcript
from providers.stt.stream import STTStream

log = structlog.get_logger(__name__)

_TARGET = "providers.stt.pocketsphinx_worker"
_FILLERS = ("i", "need", "want", "would", "like", "talk", "speak", "with", "someone", "the", "a",
            "in", "please", "me", "um", "uh", "my", "about", "is", "it", "yes", "um")
_HOMOPHONES = {"two": {"to", "too"}, "four": {"for"}, "one": {"won"}, "eight": {"ate"}}


class PocketsphinxSettings(STTSettings):
    model_dir: Path | None = None   # folder with en-us/, en-us.lm.bin, cmudict-en-us.dict; None: packaged
    language: str | None = "en-US"
    timeout: float = 15.0
    stream_workers: int = 2         # processes that decode callers' audio as it is recorded (0: off)


def _words(phrase: str) -> list[str]:
    return re.findall(r"[a-z']+", phrase.lower())


def build_grammar(hints: list[str]) -> str:
    """A JSGF grammar accepting one hint phrase, optionally surrounded by filler words."""
    phrases = sorted({" ".join(_words(h)) for h in hints if _words(h)})
    hint_words = {w for p in phrases for w in p.split()}
    blocked = hint_words | {h for w in hint_words for h in _HOMOPHONES.get(w, set())}
    fillers = [f for f in dict.fromkeys(_FILLERS) if f not in blocked]
    lines = ["#JSGF V1.0;", "grammar menu;",
             "public <utterance> = [<filler>+] <option> [<filler>+];",
             f"<option> = {' | '.join(phrases)};"]
    lines.append(f"<filler> = {' | '.join(fillers)};")
    return "\n".join(lines) + "\n"


class PocketsphinxSTT(STTProvider):
    name: ClassVar[str] = "pocketsphinx"
    settings_model: ClassVar[type[ProviderSettings]] = PocketsphinxSettings
    settings: PocketsphinxSettings

    def _configure(self) -> None:
        model_dir = self.settings.model_dir
        if model_dir is not None and not (model_dir / "en-us").is_dir():
            raise ProviderConfigError(f"no en-us acoustic model under {model_dir}", provider=self.label)
        self._model = str(model_dir) if model_dir else None
        self._known: dict[str, bool] = {}

    def warm_up(self) -> None:
        worker_pool("pocketsphinx").broadcast(f"{_TARGET}:load", self._model, timeout=60)
        if self.settings.stream_workers > 0:
            self._stream_pool().broadcast(f"{_TARGET}:load", self._model, timeout=60)

    def _stream_pool(self) -> Any:
        return worker_pool("pocketsphinx-stream", self.settings.stream_workers)

    def _grammar(self, hints: list[str] | None, timeout: float) -> tuple[str | None, str | None]:
        """(search name, JSGF) for these hints, or (None, None) for the language model."""
        usable = self._usable_hints(hints, timeout) if hints else []
        grammar = build_grammar(usable) if usable else None
        return ("g" + hashlib.sha1(grammar.encode()).hexdigest()[:16] if grammar else None), grammar

    def open_stream(self, sample_rate: int, *, language: str | None = None,
                    hints: list[str] | None = None) -> STTStream:
        lang = language or self.settings.language
        if self.settings.stream_workers <= 0:
            return STTStream(self, sample_rate, language=lang, hints=hints)
        try:
            lease = self._stream_pool().lease(timeout=0.0)
        except ProviderError:
            log.info("stt.stream_workers_busy", provider=self.label, workers=self.settings.stream_workers)
            return STTStream(self, sample_rate, language=lang, hints=hints)
        return PocketsphinxStream(self, lease, sample_rate, language=lang, hints=hints)

    def _usable_hints(self, hints: list[str], timeout: float) -> list[str]:
        """Hints whose every word is in the dictionary (unknown words break JSGF)."""
        words = sorted({w for h in hints for w in _words(h)} - self._known.keys())
        if words:
            known = set(worker_pool("pocketsphinx").call(f"{_TARGET}:known_words", self._model, words,
                                                          timeout=timeout))
            self._known.update({w: w in known for w in words})
        return [h for h in hints if _words(h) and all(self._known[w] for w in _words(h))]

    def _transcribe(self, audio: AudioClip, *, language: str | None, hints: list[str] | None,
                    timeout: float) -> Transcript:
        name, grammar = self._grammar(hints, timeout)
        text, prob = worker_pool("pocketsphinx").call(f"{_TARGET}:decode", self._model, audio.pcm,
                                                      audio.sample_rate, name, grammar, timeout=timeout)
        return Transcript(text, prob, self.label, language or "en-US")


class PocketsphinxStream(STTStream):
    """Decodes in a leased worker as audio is fed (see the module docstring).

    One greenlet owns the lease: it starts the stream, passes on the audio fed since its last
    call (pieces that arrive while the worker is busy go together), and answers `transcript`
    requests after the audio fed before them. After a transcript it holds further audio back
    until `resume` (the caller spoke again) or the next request: a transcript ends the decoder's
    utterance, and going on means decoding everything again from the start, which a caller who
    has finished would make the worker do for nothing while the answer is being synthesized.
    It gives the worker back on `close`, or after `IDLE` seconds without a request.
    """

    IDLE = 120.0

    def __init__(self, provider: PocketsphinxSTT, lease: WorkerLease, sample_rate: int, *,
                 language: str | None, hints: list[str] | None) -> None:
        super().__init__(provider, sample_rate, language=language, hints=hints)
        self.stt = provider
        self.lease = lease
        self.failed: ProviderError | None = None
        self._pending = bytearray()
        self._requests: list[AsyncResult] = []
        self._holding = False
        self._wake = Event()
        self._job = gevent.spawn(self._run)

    def _run(self) -> None:
        timeout = self.stt.settings.timeout
        try:
            name, grammar = self.stt._grammar(self.hints, timeout)
            self.lease.call(f"{_TARGET}:stream_start", self.stt._model, self.sample_rate, name, grammar,
                            timeout=timeout)
            while not self.closed:
                feeding = bool(self._pending) and (not self._holding or bool(self._requests))
                if not feeding and not self._requests:
                    if not self._wake.wait(timeout=self.IDLE):
                        break
                    self._wake.clear()
                    continue
                if feeding:
                    self._holding = False
                    pcm, self._pending = bytes(self._pending), bytearray()
                    self.lease.call(f"{_TARGET}:stream_feed", pcm, timeout=timeout)
                    continue   # audio that came meanwhile goes before the requests that followed it
                requests, self._requests = self._requests, []
                for request in requests:
                    request.set(self.lease.call(f"{_TARGET}:stream_result", timeout=timeout))
                self._holding = True
        except ProviderError as e:
            self.failed = e
            log.warning("stt.stream_worker_failed", provider=self.stt.label, error=type(e).__name__)
            for request in self._requests:
                request.set_exception(e)
            self._requests = []
        finally:
            self.lease.release()

    @property
    def incremental(self) -> bool:  # type: ignore[override]
        """Decoding as it goes (until the worker fails: then the kept audio is decoded whole)."""
        return self.failed is None and not self._job.dead

    def feed(self, pcm: bytes) -> None:
        super().feed(pcm)
        if self.failed is None and not self.closed:
            self._pending += pcm
            self._wake.set()

    def resume(self) -> None:
        self._holding = False
        self._wake.set()

    def transcript(self, *, timeout: float) -> Transcript:
        if self.failed is None and not self._job.dead:
            request = AsyncResult()
            self._requests.append(request)
            self._wake.set()
            started = time.monotonic()
            try:
                text, prob = request.get(timeout=timeout)
            except gevent.Timeout:
                raise ProviderTimeout(f"streamed transcript not ready within {timeout:g}s",
                                      provider=self.stt.label) from None
            except ProviderError:
                pass   # the worker failed: decode the kept audio the ordinary way
            else:
                log.info("stt.transcribed", provider=self.stt.label, streamed=True, chars=len(text),
                         audio_s=round(self.audio.duration, 2),
                         latency_ms=round((time.monotonic() - started) * 1000, 1))
                return Transcript(text, prob, self.stt.label, self.language or "en-US")
        return super().transcript(timeout=timeout)

    def close(self) -> None:
        super().close()
        self._wake.set()
        if self._job.dead:
            self.lease.release()
