"""The embeddings capability: ``embed(texts) -> float32 array, one L2-normalised row each``.

Vendors implement ``_embed`` for one batch; the base splits into ``batch_size`` batches,
applies the deadline and retries per batch, checks the shape against ``dimension``, and
normalises rows so a dot product is the cosine similarity.
``purpose`` lets vendors that embed queries and documents differently (Cohere, Voyage)
do so; others ignore it.
"""

from __future__ import annotations

import abc
from typing import ClassVar, Literal

import numpy as np

from providers.base import Provider, ProviderSettings
from providers.errors import ProviderBadResponse

Purpose = Literal["document", "query"]


class EmbeddingSettings(ProviderSettings):
    model: str = ""
    dimension: int | None = None      # expected width; checked on every answer when set
    batch_size: int = 64


class EmbeddingProvider(Provider):
    kind: ClassVar[str] = "embeddings"
    settings_model: ClassVar[type[ProviderSettings]] = EmbeddingSettings
    settings: EmbeddingSettings
    default_dimension: ClassVar[int | None] = None

    @property
    def dimension(self) -> int:
        dim = self.settings.dimension or self.default_dimension
        if not dim:
            raise ProviderBadResponse("dimension unknown until the first embedding", provider=self.label)
        return dim

    def embed(self, texts: list[str], *, purpose: Purpose = "document",
              timeout: float | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        size = self.settings.batch_size
        parts = []
        for start in range(0, len(texts), size):
            batch = list(texts[start:start + size])
            vectors = self._call("embed", lambda t, b=batch: self._embed(b, purpose=purpose, timeout=t),
                                 timeout=timeout)
            parts.append(self._check(np.asarray(vectors, dtype=np.float32), len(batch)))
        return normalize_rows(np.vstack(parts))

    def _check(self, vectors: np.ndarray, count: int) -> np.ndarray:
        if vectors.ndim != 2 or vectors.shape[0] != count:
            raise ProviderBadResponse(f"expected {count} vectors, got shape {vectors.shape}",
                                      provider=self.label)
        expected = self.settings.dimension or self.default_dimension
        if expected and vectors.shape[1] != expected:
            raise ProviderBadResponse(f"expected dimension {expected}, got {vectors.shape[1]}",
                                      provider=self.label)
        if not np.all(np.isfinite(vectors)):
            raise ProviderBadResponse("embedding contains NaN or infinity", provider=self.label)
        return vectors

    @abc.abstractmethod
    def _embed(self, texts: list[str], *, purpose: Purpose, timeout: float) -> np.ndarray:
        """Embed one batch (any float rows; the base normalises)."""


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    v = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(norms == 0, 1.0, norms)).astype(np.float32)
