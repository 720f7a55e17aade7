"""Embeddings ``voyage``: Voyage AI over REST (``POST {base_url}/v1/embeddings``,
``Authorization: Bearer``; ``input_type`` is ``document`` or ``query``)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import Field

from providers.base import ProviderSettings
from providers.embeddings.base import EmbeddingProvider, EmbeddingSettings, Purpose
from providers.errors import ProviderBadResponse
from providers.http import HTTPClient

_KNOWN = {"voyage-3": 1024, "voyage-3-lite": 512, "voyage-3.5": 1024, "voyage-3.5-lite": 1024}


class VoyageSettings(EmbeddingSettings):
    base_url: str = Field("https://api.voyageai.com", pattern=r"^https?://")
    model: str = "voyage-3.5-lite"


class VoyageEmbeddings(EmbeddingProvider):
    name: ClassVar[str] = "voyage"
    settings_model: ClassVar[type[ProviderSettings]] = VoyageSettings
    settings: VoyageSettings
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
        body = self.http.json("POST", "v1/embeddings", timeout=timeout, json={
            "model": self.settings.model, "input": texts, "input_type": purpose})
        try:
            rows = sorted(body["data"], key=lambda d: d["index"])
            return np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        except (KeyError, TypeError, ValueError) as e:
            raise ProviderBadResponse(f"unexpected Voyage body: {e!r}", provider=self.label) from e
