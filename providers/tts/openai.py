"""TTS ``openai``: OpenAI's speech API through the ``openai`` SDK:
``POST {base_url}/audio/speech`` with ``response_format="pcm"`` (raw 24 kHz 16-bit mono).
"""

from __future__ import annotations

from typing import Any, ClassVar

from providers.audio import AudioClip, pcm_clip
from providers.base import ProviderSettings
from providers.openai_sdk import OpenAIClientOwner, OpenAIConnection
from providers.sdk_errors import sdk_errors
from providers.tts.base import SpeakInstead, TTSProvider, TTSSettings

PCM_RATE = 24000


class OpenAITTSSettings(TTSSettings, OpenAIConnection):
    model: str = "gpt-4o-mini-tts"
    voice: str | None = "alloy"
    instructions: str | None = None   # speaking style, for models that take it


class OpenAITTS(OpenAIClientOwner, TTSProvider):
    name: ClassVar[str] = "openai"
    settings_model: ClassVar[type[ProviderSettings]] = OpenAITTSSettings
    settings: OpenAITTSSettings
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)


    def voice_id(self, voice: str | None = None) -> str:
        return f"{self.settings.model}/{voice or self.settings.voice}"

    def _synthesize(self, text: str, *, voice: str | None, language: str | None,
                    timeout: float) -> AudioClip | SpeakInstead:
        kwargs: dict[str, Any] = {"model": self.settings.model, "voice": voice or self.settings.voice or "alloy",
                                  "input": text, "response_format": "pcm", "timeout": timeout}
        if self.settings.instructions:
            kwargs["instructions"] = self.settings.instructions
        with sdk_errors(self.label):
            response = self.client().audio.speech.create(**kwargs)
            data = response.read()
        return pcm_clip(data, PCM_RATE, provider=self.label)
