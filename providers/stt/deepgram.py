"""STT ``deepgram``: Deepgram pre-recorded audio over REST
(``POST {base_url}/v1/listen?model=…&language=…``, ``Authorization: Token <key>``, the WAV
as the body). Hints become ``keyterm`` (Nova-3) or ``keywords`` (older models)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.errors import ProviderBadResponse
from providers.http import HTTPClient
from providers.stt.base import STTProvider, STTSettings, Transcript


class DeepgramSettings(STTSettings):
    base_url: str = Field("https://api.deepgram.com", pattern=r"^https?://")
    model: str = "nova-3"
    smart_format: bool = True


class DeepgramSTT(STTProvider):
    name: ClassVar[str] = "deepgram"
    settings_model: ClassVar[type[ProviderSettings]] = DeepgramSettings
    settings: DeepgramSettings
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)

    def _configure(self) -> None:
        self.http = HTTPClient(self.settings.base_url, provider=self.label,
                               headers={"Authorization": f"Token {self.secret('api_key')}"})

    def warm_up(self) -> None:
        _ = self.http.session

    def close(self) -> None:
        self.http.close()

    def _transcribe(self, audio: AudioClip, *, language: str | None, hints: list[str] | None,
                    timeout: float) -> Transcript:
        params: list[tuple[str, Any]] = [("model", self.settings.model),
                                         ("smart_format", str(self.settings.smart_format).lower())]
        if language:
            params.append(("language", language))
        key = "keyterm" if self.settings.model.startswith("nova-3") else "keywords"
        params += [(key, h) for h in hints or ()]
        body = self.http.json("POST", "v1/listen", params=params, data=audio.to_wav_bytes(),
                              headers={"Content-Type": "audio/wav"}, timeout=timeout)
        try:
            alt = body["results"]["channels"][0]["alternatives"][0]
            return Transcript(str(alt.get("transcript", "")).strip(), float(alt.get("confidence", 0.0)),
                              self.label, language)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ProviderBadResponse(f"unexpected Deepgram body: {e!r}", provider=self.label) from e
