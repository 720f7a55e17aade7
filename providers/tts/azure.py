"""TTS ``azure``: Azure AI Speech text-to-speech over REST
(``POST https://{region}.tts.speech.microsoft.com/cognitiveservices/v1``, SSML body,
``Ocp-Apim-Subscription-Key``; ``X-Microsoft-OutputFormat: riff-8khz-16bit-mono-pcm`` or
``riff-16khz-16bit-mono-pcm`` gives a WAV ready for FreeSWITCH)."""

from __future__ import annotations

from typing import ClassVar, Literal
from xml.sax.saxutils import escape, quoteattr

from pydantic import Field

from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.errors import ProviderBadResponse
from providers.http import HTTPClient
from providers.tts.base import SpeakInstead, TTSProvider, TTSSettings


class AzureTTSSettings(TTSSettings):
    region: str = Field("eastus", pattern=r"^[a-z0-9]+$")
    base_url: str | None = Field(None, pattern=r"^https?://")   # default from the region
    voice: str | None = "en-US-JennyNeural"
    language: str | None = "en-US"
    sample_rate: Literal[8000, 16000] = 8000


class AzureTTS(TTSProvider):
    name: ClassVar[str] = "azure"
    settings_model: ClassVar[type[ProviderSettings]] = AzureTTSSettings
    settings: AzureTTSSettings
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)

    def _configure(self) -> None:
        base = self.settings.base_url or f"https://{self.settings.region}.tts.speech.microsoft.com"
        self.http = HTTPClient(base, provider=self.label,
                               headers={"Ocp-Apim-Subscription-Key": self.secret("api_key"),
                                        "User-Agent": "ivr-controller"})

    def warm_up(self) -> None:
        _ = self.http.session

    def close(self) -> None:
        self.http.close()

    def _synthesize(self, text: str, *, voice: str | None, language: str | None,
                    timeout: float) -> AudioClip | SpeakInstead:
        lang = language or self.settings.language or "en-US"
        name = voice or self.settings.voice or "en-US-JennyNeural"
        ssml = (f"<speak version='1.0' xml:lang={quoteattr(lang)}>"
                f"<voice name={quoteattr(name)}>{escape(text)}</voice></speak>")
        khz = self.settings.sample_rate // 1000
        data, _ = self.http.content("POST", "cognitiveservices/v1", data=ssml.encode("utf-8"), timeout=timeout,
                                    headers={"Content-Type": "application/ssml+xml",
                                             "X-Microsoft-OutputFormat": f"riff-{khz}khz-16bit-mono-pcm"})
        clip = AudioClip.from_wav_bytes(data, provider=self.label)
        if clip.duration == 0:
            raise ProviderBadResponse("empty audio", provider=self.label)
        return clip
