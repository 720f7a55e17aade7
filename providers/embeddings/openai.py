"""Embeddings ``openai``: ``POST {base_url}/embeddings`` through the ``openai`` SDK
(``text-embedding-3-small`` by default, 1536 dimensions; ``dimension`` shortens it)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from providers.base import ProviderSettings
from providers.embeddings.base import EmbeddingProvider, EmbeddingSettings, Purpose
from providers.errors import ProviderBadResponse
from providers.openai_sdk import OpenAIClientOwner, OpenAIConnection
from providers.sdk_errors import sdk_errors

_KNOWN = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


class OpenAIEmbeddingSettings(EmbeddingSettings, OpenAIConnection):
    model: str = "text-embedding-3-small"


class OpenAIEmbeddings(OpenAIClientOwner, EmbeddingProvider):
    name: ClassVar[str] = "openai"
    settings_model: ClassVar[type[ProviderSettings]] = OpenAIEmbeddingSettings
    settings: OpenAIEmbeddingSettings
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)

    def _configure(self) -> None:
        self.default_dimension = _KNOWN.get(self.settings.model)  # type: ignore[misc]

    def _embed(self, texts: list[str], *, purpose: Purpose, timeout: float) -> np.ndarray:
        kwargs: dict[str, Any] = {"model": self.settings.model, "input": texts, "encoding_format": "float",
                                  "timeout": timeout}
        if self.settings.dimension:
            kwargs["dimensions"] = self.settings.dimension
        with sdk_errors(self.label):
            result = self.client().embeddings.create(**kwargs)
        try:
            rows = sorted(result.data, key=lambda d: d.index)
            return np.asarray([r.embedding for r in rows], dtype=np.float32)
        except (AttributeError, TypeError, ValueError) as e:
            raise ProviderBadResponse(f"unexpected embeddings body: {e}", provider=self.label) from e
