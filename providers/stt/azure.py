"""STT ``azure``: Azure AI Speech, REST API for short audio
(``POST https://{region}.stt.speech.microsoft.com/speech/recognition/conversation/
cognitiveservices/v1?language=…&format=detailed``, ``Ocp-Apim-Subscription-Key``, a
16 kHz WAV body). ``RecognitionStatus`` other than ``Success`` (silence, no match) is an
empty transcript, not an error. The REST API takes no phrase list, so hints are unused.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.errors import ProviderBadResponse
from providers.http import HTTPClient
from providers.stt.base import STTProvider, STTSettings, Transcript

_PATH = "speech/recognition/conversation/cognitiveservices/v1"


class AzureSTTSettings(STTSettings):
    region: str = Field("eastus", pattern=r"^[a-z0-9]+$")
    base_url: str | None = Field(None, pattern=r"^https?://")   # default from the region
    language: str | None = "en-US"


class AzureSTT(STTProvider):
    name: ClassVar[str] = "azure"
    settings_model: ClassVar[type[ProviderSettings]] = AzureSTTSettings
    settings: AzureSTTSettings
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)

    def _configure(self) -> None:
        base = self.settings.base_url or f"https://{self.settings.region}.stt.speech.microsoft.com"
        self.http = HTTPClient(base, provider=self.label,
                               headers={"Ocp-Apim-Subscription-Key": self.secret("api_key")})

    def warm_up(self) -> None:
        _ = self.http.session

    def close(self) -> None:
        self.http.close()

    def _transcribe(self, audio: AudioClip, *, language: str | None, hints: list[str] | None,
                    timeout: float) -> Transcript:
        lang = language or "en-US"
        body = self.http.json(
            "POST", _PATH, params={"language": lang, "format": "detailed"}, timeout=timeout,
            data=audio.resample(16000).to_wav_bytes(),
            headers={"Content-Type": "audio/wav; codecs=audio/pcm; samplerate=16000", "Accept": "application/json"})
        try:
            status = body["RecognitionStatus"]
            if status != "Success":
                return Transcript("", None, self.label, lang)
            best = (body.get("NBest") or [{}])[0]
            text = best.get("Display") or body.get("DisplayText", "")
            confidence = best.get("Confidence")
            return Transcript(str(text).strip(), None if confidence is None else float(confidence), self.label, lang)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ProviderBadResponse(f"unexpected Azure body: {e!r}", provider=self.label) from e
