"""TTS ``polly``: Amazon Polly through boto3 (``SynthesizeSpeech``, ``OutputFormat=pcm``:
raw 16-bit mono at 8 or 16 kHz, so no conversion is needed for FreeSWITCH)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from providers.audio import AudioClip, pcm_clip
from providers.aws_sdk import AWSConnection, aws_client
from providers.base import ProviderSettings
from providers.sdk_errors import sdk_errors
from providers.tts.base import SpeakInstead, TTSProvider, TTSSettings


class PollySettings(TTSSettings, AWSConnection):
    voice: str | None = "Joanna"
    engine: Literal["standard", "neural", "long-form", "generative"] = "neural"
    sample_rate: Literal[8000, 16000] = 8000


class PollyTTS(TTSProvider):
    name: ClassVar[str] = "polly"
    settings_model: ClassVar[type[ProviderSettings]] = PollySettings
    settings: PollySettings
    required_secrets: ClassVar[tuple[str, ...]] = ("aws_access_key_id", "aws_secret_access_key")

    def _configure(self) -> None:
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client("polly", self.settings, self._secrets, self.label)
        return self._client

    def warm_up(self) -> None:
        self.client()

    def voice_id(self, voice: str | None = None) -> str:
        return f"{self.settings.engine}/{voice or self.settings.voice}"

    def _synthesize(self, text: str, *, voice: str | None, language: str | None,
                    timeout: float) -> AudioClip | SpeakInstead:
        kwargs: dict[str, Any] = {"Text": text, "OutputFormat": "pcm", "VoiceId": voice or self.settings.voice,
                                  "SampleRate": str(self.settings.sample_rate), "Engine": self.settings.engine}
        if language:
            kwargs["LanguageCode"] = language
        with sdk_errors(self.label):
            response = self.client().synthesize_speech(**kwargs)
            data = response["AudioStream"].read()
        return pcm_clip(data, self.settings.sample_rate, provider=self.label)
