"""TTS ``google``: Google Cloud Text-to-Speech over REST
(``POST {base_url}/v1/text:synthesize``, ``x-goog-api-key``; ``LINEAR16`` at the telephone
rate; the answer's ``audioContent`` is a base64 WAV)."""

from __future__ import annotations

import base64
import binascii
from typing import ClassVar, Literal

from pydantic import Field

from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.errors import ProviderBadResponse
from providers.http import GoogleKeyHTTP
from providers.tts.base import SpeakInstead, TTSProvider, TTSSettings


class GoogleTTSSettings(TTSSettings):
    base_url: str = Field("https://texttospeech.googleapis.com", pattern=r"^https?://")
    voice: str | None = "en-US-Standard-C"
    language: str | None = "en-US"
    sample_rate: Literal[8000, 16000] = 8000


class GoogleTTS(GoogleKeyHTTP, TTSProvider):
    name: ClassVar[str] = "google"
    settings_model: ClassVar[type[ProviderSettings]] = GoogleTTSSettings
    settings: GoogleTTSSettings
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)


    def _synthesize(self, text: str, *, voice: str | None, language: str | None,
                    timeout: float) -> AudioClip | SpeakInstead:
        lang = language or self.settings.language or "en-US"
        body = self.http.json("POST", "v1/text:synthesize", timeout=timeout, json={
            "input": {"text": text},
            "voice": {"languageCode": lang, "name": voice or self.settings.voice},
            "audioConfig": {"audioEncoding": "LINEAR16", "sampleRateHertz": self.settings.sample_rate}})
        try:
            data = base64.b64decode(body["audioContent"], validate=True)
        except (KeyError, TypeError, binascii.Error) as e:
            raise ProviderBadResponse(f"no audioContent in answer: {e!r}", provider=self.label) from e
        if data[:4] == b"RIFF":
            return AudioClip.from_wav_bytes(data, provider=self.label)
        return AudioClip(data[: len(data) // 2 * 2], self.settings.sample_rate, provider=self.label)
