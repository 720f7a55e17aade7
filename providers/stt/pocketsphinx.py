"""STT ``pocketsphinx``: CMU PocketSphinx with the English model the package ships.

Free speech is poor on telephone audio, but a grammar of the expected words is reliable:
when ``hints`` are given we build a JSGF grammar ``[filler*] (hint | hint …) [filler*]``
(the fillers let "I need billing please" match "billing"); without hints the full
language model is used. Audio is resampled to 16 kHz (8 kHz telephone audio upsampled).

Decoding runs in a spawned worker process (``providers.process_pool``), because
pocketsphinx holds the GIL and would stall every call on the hub.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import ClassVar

from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.errors import ProviderConfigError
from providers.process_pool import worker_pool
from providers.stt.base import STTProvider, STTSettings, Transcript

_TARGET = "providers.stt.pocketsphinx_worker"
_FILLERS = ("i", "need", "want", "would", "like", "talk", "speak", "with", "someone", "the", "a",
            "in", "please", "me", "um", "uh", "my", "about", "is", "it", "yes", "um")
_HOMOPHONES = {"two": {"to", "too"}, "four": {"for"}, "one": {"won"}, "eight": {"ate"}}


class PocketsphinxSettings(STTSettings):
    model_dir: Path | None = None   # folder with en-us/, en-us.lm.bin, cmudict-en-us.dict; None: packaged
    language: str | None = "en-US"
    timeout: float = 15.0


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
        usable = self._usable_hints(hints, timeout) if hints else []
        grammar = build_grammar(usable) if usable else None
        name = "g" + hashlib.sha1(grammar.encode()).hexdigest()[:16] if grammar else None
        text, prob = worker_pool("pocketsphinx").call(f"{_TARGET}:decode", self._model, audio.pcm,
                                                      audio.sample_rate, name, grammar, timeout=timeout)
        return Transcript(text, prob, self.label, language or "en-US")
