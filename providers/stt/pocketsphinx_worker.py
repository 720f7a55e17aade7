"""Runs inside a ``providers.process_pool`` worker: pocketsphinx decoding.

pocketsphinx holds the GIL while it decodes (measured: 1.5–2.4 s hub stalls even from a
thread), so it never runs in the controller process. Each worker keeps one ``Decoder`` per
model folder (loaded once) and one JSGF search per distinct grammar (an LRU of 32), so a
menu's grammar is compiled once per worker, not per call.

Kept light on imports: a worker process imports only this module, ``providers.audio`` (numpy)
and pocketsphinx.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

_decoders: dict[str, Any] = {}
_searches: dict[str, OrderedDict[str, None]] = {}
_MAX_SEARCHES = 32


def _decoder(model_dir: str | None) -> Any:
    key = model_dir or ""
    decoder = _decoders.get(key)
    if decoder is None:
        from pocketsphinx import Decoder

        kwargs: dict[str, Any] = {"samprate": 16000, "loglevel": "FATAL"}
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


def decode(model_dir: str | None, pcm: bytes, sample_rate: int, grammar_name: str | None,
           jsgf: str | None) -> tuple[str, float | None]:
    """Decode 16-bit mono PCM (resampled here to the model's 16 kHz); with a JSGF grammar
    when given, else the full language model."""
    from providers.audio import AudioClip

    pcm16k = AudioClip(pcm, sample_rate).resample(16000).pcm
    decoder = _decoder(model_dir)
    key = model_dir or ""
    searches = _searches[key]
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
    decoder.start_utt()
    decoder.process_raw(pcm16k, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    if hyp is None:
        return "", None
    return hyp.hypstr, float(hyp.prob)
