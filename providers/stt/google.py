"""STT ``google``: Google Cloud Speech-to-Text v1 over REST
(``POST {base_url}/v1/speech:recognize``, API key in ``x-goog-api-key``; LINEAR16 audio
base64 in the JSON body). Hints become a ``speechContexts`` phrase list with a boost.
Empty ``results`` (silence) is an empty transcript."""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from pydantic import Field

from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.errors import ProviderBadResponse
from providers.http import GoogleKeyHTTP
from providers.stt.base import STTProvider, STTSettings, Transcript


class GoogleSTTSettings(STTSettings):
    base_url: str = Field("https://speech.googleapis.com", pattern=r"^https?://")
    model: str = "phone_call"
    language: str | None = "en-US"
    hint_boost: float = 10.0


class GoogleSTT(GoogleKeyHTTP, STTProvider):
    name: ClassVar[str] = "google"
    settings_model: ClassVar[type[ProviderSettings]] = GoogleSTTSettings
    settings: GoogleSTTSettings
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)


    def _transcribe(self, audio: AudioClip, *, language: str | None, hints: list[str] | None,
                    timeout: float) -> Transcript:
        lang = language or "en-US"
        config: dict[str, Any] = {"encoding": "LINEAR16", "sampleRateHertz": audio.sample_rate,
                                  "languageCode": lang, "model": self.settings.model}
        if hints:
            config["speechContexts"] = [{"phrases": hints, "boost": self.settings.hint_boost}]
        body = self.http.json("POST", "v1/speech:recognize", timeout=timeout, json={
            "config": config, "audio": {"content": base64.b64encode(audio.pcm).decode("ascii")}})
        try:
            results = body.get("results") or []
            alts = [r["alternatives"][0] for r in results if r.get("alternatives")]
            text = " ".join(str(a.get("transcript", "")).strip() for a in alts).strip()
            confs = [float(a["confidence"]) for a in alts if "confidence" in a]
            return Transcript(text, min(confs) if confs else None, self.label, lang)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise ProviderBadResponse(f"unexpected Google body: {e!r}", provider=self.label) from e
