"""Embeddings ``cohere``: Cohere Embed v2 over REST (``POST {base_url}/v2/embed``,
``Authorization: Bearer``; ``input_type`` is ``search_document`` or ``search_query``)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from providers.base import ProviderSettings
from providers.embeddings.base import EmbeddingProvider, EmbeddingSettings, Purpose
from providers.errors import ProviderBadResponse
from providers.http import HTTPClient

_KNOWN = {"embed-english-v3.0": 1024, "embed-multilingual-v3.0": 1024, "embed-english-light-v3.0": 384,
          "embed-multilingual-light-v3.0": 384}


class CohereSettings(EmbeddingSettings):
    base_url: str = Field("https://api.cohere.com", pattern=r"^https?://")
    model: str = "embed-multilingual-v3.0"
    batch_size: int = 96


class CohereEmbeddings(EmbeddingProvider):
    name: ClassVar[str] = "cohere"
    settings_model: ClassVar[type[ProviderSettings]] = CohereSettings
    settings: CohereSettings
    required_secrets: ClassVar[tuple[str, ...]] = ("api_key",)

    def _configure(self) -> None:
        self.default_dimension = _KNOWN.get(self.settings.model)  # type: ignore[misc]
        self.http = HTTPClient(self.settings.base_url, provider=self.label,
                               headers={"Authorization": f"Bearer {self.secret('api_key')}"})

    def warm_up(self) -> None:
        _ = self.http.session

    def close(self) -> None:
        self.http.close()

    def _embed(self, texts: list[str], *, purpose: Purpose, timeout: float) -> np.ndarray:
        body = self.http.json("POST", "v2/embed", timeout=timeout, json={
            "model": self.settings.model, "texts": texts, "embedding_types": ["float"],
            "input_type": "search_query" if purpose == "query" else "search_document"})
        try:
            return np.asarray(body["embeddings"]["float"], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as e:
            raise ProviderBadResponse(f"unexpected Cohere body: {e!r}", provider=self.label) from e
