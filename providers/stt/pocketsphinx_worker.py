"""Runs inside a ``providers.process_pool`` worker: pocketsphinx decoding.

pocketsphinx holds the GIL while it decodes (measured: 1.5–2.4 s hub stalls even from a
thread), so it never runs in the controller process. Each worker keeps one ``Decoder`` per
model folder (loaded once) and one JSGF search per distinct grammar (an LRU of 32), so a
menu's grammar is compiled once per worker, not per call.

Streams (`stream_start` / `stream_feed` / `stream_result`): a worker leased by one
`providers.stt.pocketsphinx.PocketsphinxStream` decodes the caller's audio as it is recorded
(``process_raw`` without ``full_utt``, resampled piece by piece with `StreamResampler`), so a
transcript only waits for the end of the search.

Kept light on imports: a worker process imports only this module, ``providers.audio`` (numpy)
and pocketsphinx.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

# Where live cepstral mean normalisation starts (a stream cannot average over the utterance
# first, as a whole-clip decode does). pocketsphinx's default fits 16 kHz wideband audio; a
# telephone call is 8 kHz upsampled, with nothing above 4 kHz, which moves the means far from it
# (the first words of the first streams came out wrong). These are the means the live estimate
# converged to over telephone-band speech. Each stream starts from them (the feature pipeline is
# re-initialised: nothing of the previous caller's line is left) and adapts to its caller.
TELEPHONE_CMN = "45,36,-35,28,-9,-10,14,-24,6,2,-3,10,-10"

_decoders: dict[str, Any] = {}
_searches: dict[str, OrderedDict[str, None]] = {}
_MAX_SEARCHES = 32


def _decoder(model_dir: str | None) -> Any:
    key = model_dir or ""
    decoder = _decoders.get(key)
    if decoder is None:
        from pocketsphinx import Decoder

        kwargs: dict[str, Any] = {"samprate": 16000, "loglevel": "FATAL", "cmninit": TELEPHONE_CMN}
        if model_dir:
            kwargs.update(hmm=f"{model_dir}/en-us", lm=f"{model_dir}/en-us.lm.bin",
                          dict=f"{model_dir}/cmudict-en-us.dict")
        decoder = _decoders[key] = Decoder(**kwargs)
        _searches[key] = OrderedDict()
    return decoder


def load(model_dir: str | None) -> bool:
    """Pre-load the model in this worker (warm-up)."""
    _decoder(model_dir)
    return True


def known_words(model_dir: str | None, words: list[str]) -> list[str]:
    """Those of ``words`` the pronunciation dictionary knows."""
    decoder = _decoder(model_dir)
    return [w for w in words if decoder.lookup_word(w) is not None]


def _activate(model_dir: str | None, grammar_name: str | None, jsgf: str | None) -> Any:
    """The decoder for `model_dir` with the grammar's search (else the language model) active.

    A decoder left inside an utterance (a decode that failed between ``start_utt`` and
    ``end_utt``) refuses to switch searches ("Unable to set search"): end the utterance and try
    again, then, as a last resort, load the decoder afresh, so one bad decode never breaks every
    later one in this worker."""
    try:
        return _switch(model_dir, grammar_name, jsgf)
    except (KeyError, RuntimeError):
        decoder = _decoder(model_dir)
        try:
            decoder.end_utt()
        except Exception:
            pass
        try:
            return _switch(model_dir, grammar_name, jsgf)
        except (KeyError, RuntimeError):
            _decoders.pop(model_dir or "", None)
            _searches.pop(model_dir or "", None)
            return _switch(model_dir, grammar_name, jsgf)


def _switch(model_dir: str | None, grammar_name: str | None, jsgf: str | None) -> Any:
    decoder = _decoder(model_dir)
    searches = _searches[model_dir or ""]
    if grammar_name and jsgf:
        if grammar_name not in searches:
            decoder.add_jsgf_string(grammar_name, jsgf)
            searches[grammar_name] = None
            while len(searches) > _MAX_SEARCHES:
                old, _ = searches.popitem(last=False)
                decoder.remove_search(old)
        searches.move_to_end(grammar_name)
        decoder.activate_search(grammar_name)
    else:
        decoder.activate_search("_default")
    return decoder


def _hypothesis(decoder: Any) -> tuple[str, float | None]:
    hyp = decoder.hyp()
    if hyp is None:
        return "", None
    return hyp.hypstr, float(hyp.prob)


def decode(model_dir: str | None, pcm: bytes, sample_rate: int, grammar_name: str | None,
           jsgf: str | None) -> tuple[str, float | None]:
    """Decode 16-bit mono PCM (resampled here to the model's 16 kHz); with a JSGF grammar
    when given, else the full language model."""
    from providers.audio import AudioClip

    if len(pcm) < sample_rate // 50:       # under one 10 ms frame: nothing to hear (and resampling fails)
        return "", None
    pcm16k = AudioClip(pcm, sample_rate).resample(16000).pcm
    decoder = _activate(model_dir, grammar_name, jsgf)
    decoder.start_utt()
    try:
        decoder.process_raw(pcm16k, full_utt=True)
    finally:
        decoder.end_utt()
    return _hypothesis(decoder)


# ---------------------------------------------------------------- one stream per (leased) worker


class _Stream:
    """The utterance this worker decodes as it arrives (a worker serves one stream at a time).

    Audio goes to the decoder in blocks of `BLOCK` samples whatever the pieces it came in, so
    decoding it again from the start (`resume`) gives exactly the first pass's result.
    """

    BLOCK = 640    # 40 ms at 16 kHz

    def __init__(self, decoder: Any, sample_rate: int) -> None:
        import numpy as np

        from providers.audio import StreamResampler

        self.decoder = decoder
        self.resampler = StreamResampler(sample_rate, 16000)
        self.in_utterance = False
        self.last: tuple[str, float | None] = ("", None)
        self._carry = np.zeros(0, dtype=np.float32)

    def process(self, samples: Any, *, final: bool = False) -> None:
        import numpy as np

        data = np.concatenate([self._carry, samples]) if len(self._carry) else samples
        whole = len(data) if final else len(data) - len(data) % self.BLOCK
        for start in range(0, whole, self.BLOCK):
            block = data[start:min(start + self.BLOCK, whole)]
            self.decoder.process_raw(np.clip(np.round(block), -32768, 32767).astype("<i2").tobytes(), full_utt=False)
        self._carry = np.asarray(data[whole:], dtype=np.float32)

    def resume(self) -> None:
        """A transcript ended the utterance; more audio came: decode it all again from the start
        (features reset, the same blocks: the result is that of one whole pass)."""
        import numpy as np

        self.decoder.reinit_feat()
        self.decoder.start_utt()
        self.in_utterance = True
        self.resampler.rewind()
        self._carry = np.zeros(0, dtype=np.float32)


_stream: _Stream | None = None


def stream_start(model_dir: str | None, sample_rate: int, grammar_name: str | None, jsgf: str | None) -> bool:
    """Begin a new stream in this worker (whatever the previous one left is dropped)."""
    global _stream
    if _stream is not None and _stream.in_utterance:
        _stream.decoder.end_utt()     # a search cannot change mid-utterance
    _stream = None
    decoder = _activate(model_dir, grammar_name, jsgf)
    decoder.reinit_feat()     # features and CMN afresh (~0.1 ms): no trace of the previous caller's line
    _stream = _Stream(decoder, sample_rate)
    decoder.start_utt()
    _stream.in_utterance = True
    return True


def stream_feed(pcm: bytes) -> int:
    """Decode the audio recorded since the last feed; returns the samples decoded so far (16 kHz)."""
    import numpy as np

    stream = _stream
    if stream is None:
        raise RuntimeError("no stream started in this worker")
    new = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float32)
    if not stream.in_utterance:
        stream.resampler.feed(new)
        stream.resume()
        stream.process(stream.resampler.feed(np.zeros(0, dtype=np.float32)))
    else:
        stream.process(stream.resampler.feed(new))
    return stream.resampler.done


def stream_result() -> tuple[str, float | None]:
    """The transcript of everything fed: finish the search (ends the utterance; a later feed
    decodes everything again, see `_Stream.resume`)."""
    stream = _stream
    if stream is None:
        raise RuntimeError("no stream started in this worker")
    if stream.in_utterance:
        stream.process(stream.resampler.flush(), final=True)
        stream.decoder.end_utt()
        stream.in_utterance = False
        stream.last = _hypothesis(stream.decoder)
    return stream.last
