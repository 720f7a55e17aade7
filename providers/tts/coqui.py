"""TTS ``coqui``: Coqui ``TTS`` models from a local folder (optional extra ``coqui``).

``model_path`` is a model checkpoint file and ``config_path`` its ``config.json`` (as
Coqui's ``TTS(model_path=…, config_path=…)`` takes them); nothing is downloaded. The model
loads once per process and runs in the model thread pool (torch releases the GIL).

On the development machine neither ``TTS`` 0.22 nor ``coqui-tts`` 0.28 imports with the
installed torch, so the real test is opt-in (marker ``coqui`` + ``IVR_TEST_COQUI_MODEL``);
without the package this provider fails at warm-up with ``ProviderConfigError`` and the
fallback chain moves on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.errors import ProviderConfigError
from providers.local_models import shared_model
from providers.offload import run_in_thread
from providers.tts.base import SpeakInstead, TTSProvider, TTSSettings


class CoquiSettings(TTSSettings):
    model_path: Path
    config_path: Path | None = None   # default: config.json beside the model
    timeout: float = 30.0


def _load(model_path: str, config_path: str) -> Any:
    try:
        from TTS.api import TTS
    except Exception as e:  # ImportError, or torch incompatibility at import
        raise ProviderConfigError(f"Coqui TTS is not usable here: {type(e).__name__}: {e}") from e
    return TTS(model_path=model_path, config_path=config_path, progress_bar=False)


def _run(model: Any, text: str, speaker: str | None, language: str | None) -> tuple[bytes, int]:
    kwargs: dict[str, Any] = {}
    if speaker:
        kwargs["speaker"] = speaker
    if language and getattr(model, "is_multi_lingual", False):
        kwargs["language"] = language
    wav = np.asarray(model.tts(text=text, **kwargs), dtype=np.float32)
    rate = int(getattr(getattr(model, "synthesizer", None), "output_sample_rate", 22050))
    pcm = np.clip(np.round(wav * 32767.0), -32768, 32767).astype("<i2").tobytes()
    return pcm, rate


class CoquiTTS(TTSProvider):
    name: ClassVar[str] = "coqui"
    settings_model: ClassVar[type[ProviderSettings]] = CoquiSettings
    settings: CoquiSettings

    def _configure(self) -> None:
        model = self.settings.model_path
        config = self.settings.config_path or model.parent / "config.json"
        if not model.exists():
            raise ProviderConfigError(f"model not found: {model}", provider=self.label)
        if not config.is_file():
            raise ProviderConfigError(f"config not found: {config}", provider=self.label)
        self._paths = (str(model), str(config))

    def voice_id(self, voice: str | None = None) -> str:
        return Path(self._paths[0]).stem + (f"#{voice or self.settings.voice}" if (voice or self.settings.voice)
                                            else "")

    def _model(self) -> Any:
        return shared_model(f"coqui:{self._paths[0]}", lambda: _load(*self._paths), provider=self.label)

    def warm_up(self) -> None:
        self._model()

    def _synthesize(self, text: str, *, voice: str | None, language: str | None,
                    timeout: float) -> AudioClip | SpeakInstead:
        pcm, rate = run_in_thread(_run, self._model(), text, voice, language, timeout=timeout,
                                  provider=self.label)
        return AudioClip(pcm, rate, provider=self.label)
