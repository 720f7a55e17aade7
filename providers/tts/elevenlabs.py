"""TTS ``elevenlabs``: ElevenLabs text-to-speech over REST
(``POST {base_url}/v1/text-to-speech/{voice_id}?output_format=pcm_16000``, ``xi-api-key``
header, JSON ``{"text", "model_id"}``; the body is raw 16-bit mono PCM)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from providers.audio import AudioClip, pcm_clip
from providers.base import ProviderSettings
from providers.http import HTTPClient
from providers.tts.base import SpeakInstead, TTSProvider, TTSSettings


class ElevenLabsSettings(TTSSettings):
    base_url: str = Field("https://api.elevenlabs.io", pattern=r"^https?://")
    voice: str | None = "21m00Tcm4TlvDq8ikWAM"      # a voice_id
    model: str = "eleven_flash_v2_5"
    sample_rate: Literal[8000, 16000, 22050, 24000] = 16000


class ElevenLabsTTS(TTSProvider):
    name: ClassVar[str] = "elevenlabs"
    settings_model: ClassVar[type[ProviderSettings]] = ElevenLabsSettings
    settings: ElevenLabsSettings
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)

    def _configure(self) -> None:
        self.http = HTTPClient(self.settings.base_url, provider=self.label,
                               headers={"xi-api-key": self.secret("api_key")})

    def warm_up(self) -> None:
        _ = self.http.session

    def close(self) -> None:
        self.http.close()

    def voice_id(self, voice: str | None = None) -> str:
        return f"{self.settings.model}/{voice or self.settings.voice}"

    def _synthesize(self, text: str, *, voice: str | None, language: str | None,
                    timeout: float) -> AudioClip | SpeakInstead:
        rate = self.settings.sample_rate
        body: dict[str, str] = {"text": text, "model_id": self.settings.model}
        if language:
            body["language_code"] = language.split("-")[0].lower()
        data, _ = self.http.content("POST", f"v1/text-to-speech/{voice or self.settings.voice}",
                                    params={"output_format": f"pcm_{rate}"}, json=body, timeout=timeout,
                                    headers={"Accept": "audio/pcm"})
        return pcm_clip(data, rate, provider=self.label)
