"""Provider names → classes: the alias table, lazy imports, ``build`` and ``validate_settings``.

``ALIASES`` maps ``"kind:name"`` to ``"module:Class"``; a vendor module is imported only
when a tenant uses it (vendor modules import their SDK lazily too, so validating settings
never loads a model or an SDK). An unknown name raises ``UnknownProvider`` with the close
names ("did you mean …"). Names are case-insensitive and ``-``/``_`` are equivalent.
A name that is itself ``"module:Class"`` is imported as given (plugins, test fakes).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import Any

from providers.base import Provider, format_validation_error
from providers.errors import ProviderConfigError, UnknownProvider

KINDS = ("stt", "tts", "llm", "embeddings")

ALIASES: dict[str, str] = {
    "stt:vosk": "providers.stt.vosk:VoskSTT",
    "stt:pocketsphinx": "providers.stt.pocketsphinx:PocketsphinxSTT",
    "stt:openai": "providers.stt.openai:OpenAISTT",
    "stt:deepgram": "providers.stt.deepgram:DeepgramSTT",
    "stt:azure": "providers.stt.azure:AzureSTT",
    "stt:google": "providers.stt.google:GoogleSTT",
    "tts:piper": "providers.tts.piper:PiperTTS",
    "tts:coqui": "providers.tts.coqui:CoquiTTS",
    "tts:flite": "providers.tts.flite:FliteTTS",
    "tts:openai": "providers.tts.openai:OpenAITTS",
    "tts:elevenlabs": "providers.tts.elevenlabs:ElevenLabsTTS",
    "tts:azure": "providers.tts.azure:AzureTTS",
    "tts:google": "providers.tts.google:GoogleTTS",
    "tts:polly": "providers.tts.polly:PollyTTS",
    "llm:openai": "providers.llm.openai:OpenAILLM",
    "llm:openai_compatible": "providers.llm.openai:OpenAICompatibleLLM",
    "llm:azure_openai": "providers.llm.openai:AzureOpenAILLM",
    "llm:anthropic": "providers.llm.anthropic:AnthropicLLM",
    "llm:gemini": "providers.llm.gemini:GeminiLLM",
    "llm:bedrock": "providers.llm.bedrock:BedrockLLM",
    "llm:extractive": "providers.llm.extractive:ExtractiveLLM",
    "embeddings:sentence_transformers": "providers.embeddings.sentence_transformers:SentenceTransformerEmbeddings",
    "embeddings:openai": "providers.embeddings.openai:OpenAIEmbeddings",
    "embeddings:cohere": "providers.embeddings.cohere:CohereEmbeddings",
    "embeddings:voyage": "providers.embeddings.voyage:VoyageEmbeddings",
}

_classes: dict[str, type[Provider]] = {}


def normalize(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def names(kind: str) -> list[str]:
    """The provider names known for ``kind``."""
    return sorted(key.split(":", 1)[1] for key in ALIASES if key.startswith(f"{kind}:"))


def register(kind: str, name: str, target: str) -> None:
    """Add an alias (``target`` is ``"module:Class"``)."""
    _check_kind(kind)
    ALIASES[f"{kind}:{normalize(name)}"] = target
    _classes.pop(f"{kind}:{normalize(name)}", None)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; kinds are {', '.join(KINDS)}"
        raise UnknownProvider(f"unknown provider kind {kind!r}{hint}", suggestions=close)


def resolve(kind: str, name: str) -> type[Provider]:
    """The provider class for ``kind``/``name`` (imported on first use)."""
    _check_kind(kind)
    if ":" in name:
        target, key = name, f"{kind}:{name}"
    else:
        key = f"{kind}:{normalize(name)}"
        target = ALIASES.get(key, "")
        if not target:
            known = names(kind)
            close = difflib.get_close_matches(normalize(name), known, n=3, cutoff=0.5)
            other = [k for k in KINDS if k != kind and f"{k}:{normalize(name)}" in ALIASES]
            hint = (f"; did you mean {' or '.join(repr(c) for c in close)}?" if close
                    else f"; known {kind} providers: {', '.join(known)}")
            if other:
                hint += f" ({name!r} is a {'/'.join(other)} provider)"
            raise UnknownProvider(f"unknown {kind} provider {name!r}{hint}", suggestions=close)
    cls = _classes.get(key)
    if cls is None:
        module_name, _, attr = target.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ProviderConfigError(f"cannot load {kind} provider {name!r} from {target}: {e}") from e
        if not (isinstance(cls, type) and issubclass(cls, Provider) and cls.kind == kind):
            raise ProviderConfigError(f"{target} is not a {kind} provider")
        _classes[key] = cls
    return cls


def validate_settings(kind: str, name: str, settings: Mapping[str, Any] | None) -> None:
    """Raise ``ProviderConfigError`` (one clear line) if ``settings`` do not fit the provider.

    Called when a tenant saves its configuration: nothing is loaded or connected.
    """
    cls = resolve(kind, name)
    from pydantic import ValidationError

    try:
        cls.settings_model.model_validate(dict(settings or {}))
    except ValidationError as e:
        raise ProviderConfigError(format_validation_error(e),
                                  provider=cls.label_for()) from e


def build(kind: str, name: str, settings: Mapping[str, Any] | None = None,
          secrets: Mapping[str, str] | None = None) -> Provider:
    """A ready-to-use provider (models load on ``warm_up`` or first use)."""
    return resolve(kind, name)(settings, secrets)
