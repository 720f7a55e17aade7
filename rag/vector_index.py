"""What a tenant's vector index is, whichever backend holds it: the `VectorIndex` protocol.

Two backends implement it: `rag.faiss_index.FaissIndex` (a faiss file per tenant on local disk,
the default) and `rag.pgvector_index.PgVectorIndex` (rows in PostgreSQL with the pgvector
extension, shared by every controller instance). Vectors are L2-normalised float32 rows keyed by
the database id of their chunk, so a score is the cosine similarity and a hit is looked up in
the tenant's own chunks (`schema.store.TenantStore.get_chunks`), never anyone else's.

Every index records the embedding model that built it (`IndexInfo.model`); `apply` refuses
vectors of another model or dimension, and retrieval refuses a query embedded by another model.
`apply` is atomic: readers see the index before or after, never half of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, slots=True)
class IndexInfo:
    """The index's identity: the model that built it, the vector width, the size, the version."""

    model: str
    dimension: int
    count: int
    generation: str
    updated_at: float


@dataclass(frozen=True, slots=True)
class Hit:
    chunk_id: int
    score: float


@runtime_checkable
class VectorIndex(Protocol):
    backend: str

    def info(self) -> IndexInfo | None:
        """The index's identity, or None when the tenant has none yet."""

    def ids(self) -> set[int]:
        """Every chunk id in the index."""

    def search(self, vector: np.ndarray, k: int, *, timeout: float) -> list[Hit]:
        """The `k` nearest chunks to one normalised query vector, best first."""

    def apply(self, *, model: str, dimension: int, remove: Iterable[int], add_ids: Sequence[int],
              add_vectors: np.ndarray, replace_all: bool = False) -> IndexInfo:
        """Remove `remove`, add `add_ids`/`add_vectors`, atomically; `replace_all` starts from empty."""

    def drop(self) -> None:
        """Delete the tenant's index."""


def check_vectors(ids: Sequence[int], vectors: np.ndarray, dimension: int) -> np.ndarray:
    """`vectors` as a C-contiguous float32 matrix matching `ids` and `dimension` (ValueError if not)."""
    matrix = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), -1) if len(ids) else \
        np.zeros((0, dimension), dtype=np.float32)
    if matrix.shape != (len(ids), dimension):
        raise ValueError(f"expected {len(ids)} vectors of dimension {dimension}, got shape {matrix.shape}")
    if not np.all(np.isfinite(matrix)):
        raise ValueError("vectors contain NaN or infinity")
    return matrix
