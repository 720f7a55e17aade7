"""The shared vector backend: a tenant's vectors as rows in PostgreSQL with pgvector.

With ``IVR_RAG_BACKEND=pgvector`` every controller instance reads the same vectors from the
database, so an ingest on one machine is seen by all without copying index files. Tables (made
on first use, ``CREATE EXTENSION IF NOT EXISTS vector`` included)::

    rag_vectors(chunk_id PK, tenant_id, embedding vector)    -- one row per chunk
    rag_index_meta(tenant_id PK, model, dimension, count, generation, updated_at)

Every statement filters on the tenant id. `apply` runs in one transaction (readers see the index
before or after it). Search is exact: ``ORDER BY embedding <#> query`` (negative inner product;
vectors are normalised so it ranks by cosine) over the tenant's rows; psycopg waits
cooperatively under gevent, so the hub is not blocked while PostgreSQL computes.

These tables belong to `rag`, not to the Alembic migrations of `schema`: they exist only where the
pgvector extension does. A database without the extension gives a `VectorIndexError` that says so.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import structlog
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from rag.errors import IndexMissing, RetrievalFailed, VectorIndexError
from rag.vector_index import Hit, IndexInfo, check_vectors

log = structlog.get_logger(__name__)

_DDL = (
    "CREATE EXTENSION IF NOT EXISTS vector",
    "CREATE TABLE IF NOT EXISTS rag_vectors (chunk_id integer PRIMARY KEY, tenant_id integer NOT NULL, "
    "embedding vector NOT NULL)",
    "CREATE INDEX IF NOT EXISTS rag_vectors_tenant ON rag_vectors (tenant_id)",
    "CREATE TABLE IF NOT EXISTS rag_index_meta (tenant_id integer PRIMARY KEY, model text NOT NULL, "
    "dimension integer NOT NULL, count integer NOT NULL, generation text NOT NULL, "
    "updated_at double precision NOT NULL)",
)


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form: ``[0.1,0.2,…]`` (no Python package needed)."""
    return "[" + ",".join(f"{float(x):.7g}" for x in np.asarray(vector, dtype=np.float32).ravel()) + "]"


class PgVectorIndex:
    """One tenant's vectors in PostgreSQL (pgvector)."""

    backend = "pgvector"
    _ready: set[str] = set()

    def __init__(self, engine: Engine, tenant_id: int) -> None:
        if engine.dialect.name != "postgresql":
            raise VectorIndexError(f"the pgvector backend needs PostgreSQL, not {engine.dialect.name}")
        self.engine = engine
        self.tenant_id = int(tenant_id)

    def __repr__(self) -> str:
        return f"PgVectorIndex(tenant_id={self.tenant_id})"

    def ensure_schema(self) -> None:
        """Create the extension and tables once per process and database."""
        key = self.engine.url.render_as_string(hide_password=True)
        if key in self._ready:
            return
        try:
            with self.engine.begin() as conn:
                for statement in _DDL:
                    conn.execute(text(statement))
        except DBAPIError as e:
            message = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
            if "vector" in message and ("extension" in message or "type" in message):
                raise VectorIndexError(
                    f"the pgvector extension is not available on this PostgreSQL ({message}); install it "
                    "(Debian: postgresql-<version>-pgvector) or use IVR_RAG_BACKEND=faiss") from e
            raise VectorIndexError(f"cannot prepare the pgvector tables: {message}") from e
        except SQLAlchemyError as e:
            raise VectorIndexError(f"cannot prepare the pgvector tables: {e}") from e
        self._ready.add(key)

    def info(self) -> IndexInfo | None:
        self.ensure_schema()
        try:
            with self.engine.connect() as conn:
                row = conn.execute(text("SELECT model, dimension, count, generation, updated_at FROM rag_index_meta "
                                        "WHERE tenant_id = :t"), {"t": self.tenant_id}).first()
        except SQLAlchemyError as e:
            raise VectorIndexError(f"cannot read the index of tenant {self.tenant_id}: {e}") from e
        if row is None:
            return None
        return IndexInfo(model=row[0], dimension=int(row[1]), count=int(row[2]), generation=row[3],
                         updated_at=float(row[4]))

    def ids(self) -> set[int]:
        self.ensure_schema()
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT chunk_id FROM rag_vectors WHERE tenant_id = :t"), {"t": self.tenant_id})
            return {int(r[0]) for r in rows}

    def search(self, vector: np.ndarray, k: int, *, timeout: float) -> list[Hit]:
        info = self.info()
        if info is None:
            raise IndexMissing(f"tenant {self.tenant_id} has no document index yet (ivr docs ingest)")
        if info.count == 0 or k <= 0:
            return []
        query = vector_literal(vector)
        try:
            with self.engine.connect() as conn:
                conn.execute(text(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}"))
                rows = conn.execute(text(
                    "SELECT chunk_id, -(embedding <#> CAST(:q AS vector)) AS score FROM rag_vectors "
                    "WHERE tenant_id = :t ORDER BY embedding <#> CAST(:q AS vector) LIMIT :k"),
                    {"q": query, "t": self.tenant_id, "k": int(k)}).all()
        except SQLAlchemyError as e:
            raise RetrievalFailed(f"pgvector search failed: {e}") from e
        return [Hit(int(r[0]), float(r[1])) for r in rows]

    def apply(self, *, model: str, dimension: int, remove: Iterable[int], add_ids: Sequence[int],
              add_vectors: np.ndarray, replace_all: bool = False) -> IndexInfo:
        vectors = check_vectors(add_ids, add_vectors, dimension)
        self.ensure_schema()
        generation = f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}"
        params: dict[str, Any] = {"t": self.tenant_id}
        try:
            with self.engine.begin() as conn:
                current = conn.execute(text("SELECT model, dimension FROM rag_index_meta WHERE tenant_id = :t "
                                            "FOR UPDATE"), params).first()
                if replace_all:
                    conn.execute(text("DELETE FROM rag_vectors WHERE tenant_id = :t"), params)
                elif current is not None and (current[0] != model or int(current[1]) != dimension):
                    raise VectorIndexError(
                        f"the index was built with {current[0]!r} ({current[1]} dimensions); refusing vectors "
                        f"of {model!r} ({dimension}); rebuild it with ivr docs reindex")
                gone = sorted({int(i) for i in remove} | {int(i) for i in add_ids})
                if gone:
                    conn.execute(text("DELETE FROM rag_vectors WHERE tenant_id = :t AND chunk_id = ANY(:ids)"),
                                 {"t": self.tenant_id, "ids": gone})
                if len(add_ids):
                    conn.execute(text("INSERT INTO rag_vectors (chunk_id, tenant_id, embedding) "
                                      "VALUES (:c, :t, CAST(:e AS vector))"),
                                 [{"c": int(i), "t": self.tenant_id, "e": vector_literal(v)}
                                  for i, v in zip(add_ids, vectors, strict=True)])
                count = conn.execute(text("SELECT count(*) FROM rag_vectors WHERE tenant_id = :t"), params).scalar()
                conn.execute(text(
                    "INSERT INTO rag_index_meta (tenant_id, model, dimension, count, generation, updated_at) "
                    "VALUES (:t, :m, :d, :n, :g, :u) ON CONFLICT (tenant_id) DO UPDATE SET model = :m, "
                    "dimension = :d, count = :n, generation = :g, updated_at = :u"),
                    {"t": self.tenant_id, "m": model, "d": dimension, "n": int(count or 0), "g": generation,
                     "u": time.time()})
        except SQLAlchemyError as e:
            raise VectorIndexError(f"cannot write the index of tenant {self.tenant_id}: {e}") from e
        info = self.info()
        assert info is not None
        return info

    def drop(self) -> None:
        self.ensure_schema()
        with self.engine.begin() as conn:
            conn.execute(text("DELETE FROM rag_vectors WHERE tenant_id = :t"), {"t": self.tenant_id})
            conn.execute(text("DELETE FROM rag_index_meta WHERE tenant_id = :t"), {"t": self.tenant_id})
