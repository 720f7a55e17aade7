"""TTS ``flite``: FreeSWITCH's own ``speak`` (mod_flite), the zero-dependency last fallback.

It makes no audio here: ``synthesize`` returns ``SpeakInstead`` and the caller runs
``speak flite|<voice>|<text>`` on the channel. It cannot fail, needs nothing installed
in the controller, and is never cached (there is no file to cache).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from providers.audio import AudioClip
from providers.base import ProviderSettings
from providers.tts.base import SpeakInstead, TTSProvider, TTSSettings


class FliteSettings(TTSSettings):
    voice: Literal["kal", "awb", "rms", "slt"] | None = "kal"   # mod_flite's voices


class FliteTTS(TTSProvider):
    name: ClassVar[str] = "flite"
    settings_model: ClassVar[type[ProviderSettings]] = FliteSettings
    settings: FliteSettings
    cacheable: ClassVar[bool] = False

    def _synthesize(self, text: str, *, voice: str | None, language: str | None,
                    timeout: float) -> AudioClip | SpeakInstead:
        chosen = voice if voice in ("kal", "awb", "rms", "slt") else (self.settings.voice or "kal")
        return SpeakInstead(text=text, engine="flite", voice=chosen, provider=self.label)
