"""RAG settings: where vectors live (faiss files or pgvector), chunking and size limits.

From the environment (`RagSettings.from_env()`), so every entry point agrees:

- ``IVR_RAG_BACKEND``: ``faiss`` (default; a file per tenant under ``IVR_RAG_DIR``) or
  ``pgvector`` (rows in the PostgreSQL database, shared by every controller instance);
- ``IVR_RAG_DIR``: the faiss index root (default ``var/rag``);
- ``IVR_RAG_MAX_FILE_MB``: the largest document accepted (default 20).

`open_index(settings, tenant_id, engine)` returns the tenant's `VectorIndex` for the backend.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sqlalchemy import Engine

from rag.chunking import ChunkSettings
from rag.documents import Limits
from rag.errors import VectorIndexError
from rag.vector_index import VectorIndex

Backend = Literal["faiss", "pgvector"]


@dataclass(frozen=True, slots=True)
class RagSettings:
    backend: Backend = "faiss"
    index_dir: Path = Path("var/rag")
    chunks: ChunkSettings = field(default_factory=ChunkSettings)
    limits: Limits = field(default_factory=Limits)
    embed_batch: int = 32
    embed_timeout: float = 120.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RagSettings:
        env = dict(os.environ if env is None else env)
        backend = (env.get("IVR_RAG_BACKEND") or "faiss").strip().lower()
        if backend not in ("faiss", "pgvector"):
            raise VectorIndexError(f"IVR_RAG_BACKEND must be faiss or pgvector, not {backend!r}")
        limits = Limits()
        if env.get("IVR_RAG_MAX_FILE_MB"):
            limits = Limits(max_file_bytes=int(float(env["IVR_RAG_MAX_FILE_MB"]) * 1024 * 1024))
        return cls(backend=backend, index_dir=Path(env.get("IVR_RAG_DIR") or "var/rag"),  # type: ignore[arg-type]
                   limits=limits)


def open_index(settings: RagSettings, tenant_id: int, engine: Engine | None = None) -> VectorIndex:
    """The tenant's vector index in the configured backend."""
    if settings.backend == "pgvector":
        if engine is None:
            raise VectorIndexError("the pgvector backend needs the database engine")
        from rag.pgvector_index import PgVectorIndex

        return PgVectorIndex(engine, tenant_id)
    from rag.faiss_index import FaissIndex

    return FaissIndex(settings.index_dir, tenant_id)
