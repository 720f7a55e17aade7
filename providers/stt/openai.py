"""STT ``openai``: OpenAI's transcription API (``whisper-1``, ``gpt-4o-transcribe`` …)
through the ``openai`` SDK: ``POST {base_url}/audio/transcriptions`` (multipart, a WAV file).

Hints become the ``prompt`` (Whisper's way to bias spelling and vocabulary). The API gives
no confidence for plain JSON, so ``confidence`` is None.
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.errors import ProviderBadResponse
from providers.openai_sdk import OpenAIClientOwner, OpenAIConnection
from providers.sdk_errors import sdk_errors
from providers.stt.base import STTProvider, STTSettings, Transcript


class OpenAISTTSettings(STTSettings, OpenAIConnection):
    model: str = "whisper-1"
    sample_rate: int = 16000


class OpenAISTT(OpenAIClientOwner, STTProvider):
    name: ClassVar[str] = "openai"
    settings_model: ClassVar[type[ProviderSettings]] = OpenAISTTSettings
    settings: OpenAISTTSettings
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)


    def _transcribe(self, audio: AudioClip, *, language: str | None, hints: list[str] | None,
                    timeout: float) -> Transcript:
        wav = audio.resample(self.settings.sample_rate).to_wav_bytes()
        kwargs: dict[str, Any] = {"model": self.settings.model, "file": ("audio.wav", wav, "audio/wav"),
                                  "response_format": "json", "timeout": timeout}
        if language:
            kwargs["language"] = language.split("-")[0].lower()   # ISO-639-1
        if hints:
            kwargs["prompt"] = ", ".join(hints)
        with sdk_errors(self.label):
            result = self.client().audio.transcriptions.create(**kwargs)
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            raise ProviderBadResponse("transcription has no text", provider=self.label)
        return Transcript(text.strip(), None, self.label, language)
