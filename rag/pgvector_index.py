"""The shared vector backend: a tenant's vectors as rows in PostgreSQL with pgvector.

With ``IVR_RAG_BACKEND=pgvector`` every controller instance reads the same vectors from the
database, so an ingest on one machine is seen by all without copying index files or reloading.
Tables (made on first use when missing, ``CREATE EXTENSION IF NOT EXISTS vector`` included)::

    rag_vectors(tenant_id, chunk_id, embedding vector, PRIMARY KEY (tenant_id, chunk_id))
    rag_index_meta(tenant_id PK, model, dimension, count, generation, updated_at)

Every statement filters on the tenant id, and a tenant's chunk ids are keyed under its own
tenant id (a forged id can never touch another tenant's row).

Writes: `apply` is one transaction (readers see the index before or after it, never half of it;
a writer that fails or dies midway leaves the previous index whole). Writers of one tenant are
serialised by a transaction-scoped advisory lock. New vectors go in with one binary ``COPY``
(float32 exactly as given, no text round trip); removed ids go in one ``= ANY(integer[])``.

Search is exact: ``ORDER BY embedding <#> query`` (negative inner product; vectors are
normalised, so it ranks by cosine) over the tenant's rows and a top-k heap sort; the primary
key's leading ``tenant_id`` lets PostgreSQL read only that tenant's rows when they are a small part
of the table. The cost is linear in the tenant's size (see ``benchmarks/rag``). There is
no ANN (HNSW/IVFFlat) index on purpose: ``embedding`` has no fixed width because each tenant
picks its own embedding model (384, 768, 1536 … dimensions share the table), pgvector indexes
need a fixed width, and with pgvector 0.6 an ANN index filters by tenant *after* the k nearest
are taken, so it would return fewer than k of the tenant's passages. The index identity it needs
and the search run in one explicit transaction, the search under a transaction-local
``statement_timeout`` of the caller's timeout; one that runs out of time raises `RetrievalFailed`.
psycopg waits cooperatively under gevent, so the hub keeps running while PostgreSQL works.

Privileges: the tables are created only when missing (checked first), so controllers may run as a
role with just SELECT/INSERT/UPDATE/DELETE on them once an owner (e.g. the first
``ivr docs ingest``) has created them; ``CREATE EXTENSION vector`` needs a superuser on pgvector
0.6. Concurrent first uses are serialised by an advisory lock. Whether the tables exist is
remembered per engine, and forgotten when PostgreSQL says a table is missing (the call that meets
a dropped table fails with `VectorIndexError`; the next one makes the tables again).

These tables belong to `rag`, not to the Alembic migrations of `schema`: they exist only where the
pgvector extension does. A database without the extension gives a `VectorIndexError` that says so.
"""

from __future__ import annotations

import time
import uuid
import weakref
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import structlog
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from rag.errors import IndexMissing, RetrievalFailed, VectorIndexError
from rag.vector_index import Hit, IndexInfo, check_vectors

log = structlog.get_logger(__name__)

# pg_advisory_xact_lock keys: one for creating the tables, (namespace, tenant id) for a tenant's writers.
_SCHEMA_LOCK = 0x72616776_0001
_WRITER_NAMESPACE = 0x72616776

_PRESENT = "SELECT to_regclass('rag_vectors') IS NOT NULL AND to_regclass('rag_index_meta') IS NOT NULL"
_DDL = (
    "CREATE EXTENSION IF NOT EXISTS vector",
    "CREATE TABLE IF NOT EXISTS rag_vectors (tenant_id integer NOT NULL, chunk_id integer NOT NULL, "
    "embedding vector NOT NULL, PRIMARY KEY (tenant_id, chunk_id))",
    "CREATE TABLE IF NOT EXISTS rag_index_meta (tenant_id integer PRIMARY KEY, model text NOT NULL, "
    "dimension integer NOT NULL, count integer NOT NULL, generation text NOT NULL, "
    "updated_at double precision NOT NULL)",
)
_COPY = "COPY rag_vectors (tenant_id, chunk_id, embedding) FROM STDIN WITH (FORMAT binary)"
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8       # signature, flags, header extension length
_COPY_TRAILER = b"\xff\xff"
_COPY_BLOCK_ROWS = 2048
_INT4 = (-(2**31), 2**31 - 1)
_QUERY_CANCELED = "57014"       # statement_timeout
_UNDEFINED_TABLE = "42P01"

# Engines whose database is known to have the tables (per engine: its URL alone does not say
# which role, search_path or server it reaches).
_ready: weakref.WeakSet[Engine] = weakref.WeakSet()


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form ``[0.1,0.2,…]``, with the 9 significant digits a float32 needs to round-trip."""
    return "[" + ",".join(f"{float(x):.9g}" for x in np.asarray(vector, dtype=np.float32).ravel()) + "]"


def copy_blocks(tenant_id: int, ids: Sequence[int], vectors: np.ndarray) -> Iterator[bytes]:
    """The rows ``(tenant_id, chunk_id, embedding)`` in PostgreSQL's binary COPY format, in blocks.

    pgvector's binary form of a vector is ``int16 dim, int16 0, float4[dim]`` (network order).
    """
    matrix = np.ascontiguousarray(vectors, dtype=np.float32)
    dimension = int(matrix.shape[1])
    chunk_ids = check_ids(ids)
    row = np.dtype([("fields", ">i2"), ("tenant_len", ">i4"), ("tenant", ">i4"), ("chunk_len", ">i4"),
                    ("chunk", ">i4"), ("vector_len", ">i4"), ("dim", ">i2"), ("unused", ">i2"),
                    ("values", ">f4", (dimension,))])
    yield _COPY_HEADER
    for start in range(0, len(chunk_ids), _COPY_BLOCK_ROWS):
        stop = min(start + _COPY_BLOCK_ROWS, len(chunk_ids))
        block = np.zeros(stop - start, dtype=row)
        block["fields"] = 3
        block["tenant_len"] = 4
        block["tenant"] = tenant_id
        block["chunk_len"] = 4
        block["chunk"] = chunk_ids[start:stop]
        block["vector_len"] = 4 + 4 * dimension
        block["dim"] = dimension
        block["values"] = matrix[start:stop]
        yield block.tobytes()
    yield _COPY_TRAILER


def check_ids(ids: Sequence[int]) -> np.ndarray:
    """`ids` as int64, each fitting the ``integer`` column (ValueError if not)."""
    chunk_ids = np.asarray(ids, dtype=np.int64).ravel()
    if len(chunk_ids) and (chunk_ids.min() < _INT4[0] or chunk_ids.max() > _INT4[1]):
        raise ValueError("chunk ids must fit a PostgreSQL integer")
    return chunk_ids


def _reason(e: Exception) -> str:
    """The first line of what PostgreSQL (or the driver) said."""
    orig = getattr(e, "orig", None) or e
    lines = str(orig).strip().splitlines()
    return lines[0] if lines else type(orig).__name__


def _sqlstate(e: Exception) -> str | None:
    return getattr(getattr(e, "orig", None) or e, "sqlstate", None)


class PgVectorIndex:
    """One tenant's vectors in PostgreSQL (pgvector)."""

    backend = "pgvector"

    def __init__(self, engine: Engine, tenant_id: int) -> None:
        if engine.dialect.name != "postgresql":
            raise VectorIndexError(f"the pgvector backend needs PostgreSQL, not {engine.dialect.name}")
        self.engine = engine
        self.tenant_id = int(tenant_id)

    def __repr__(self) -> str:
        return f"PgVectorIndex(tenant_id={self.tenant_id})"

    # ------------------------------------------------------------------ tables

    def ensure_schema(self) -> None:
        """Create the extension and tables if they are missing (checked once per engine)."""
        if self.engine in _ready:
            return
        try:
            with self.engine.begin() as conn:
                if not conn.execute(text(_PRESENT)).scalar():
                    conn.execute(text("SELECT pg_advisory_xact_lock(CAST(:k AS bigint))"), {"k": _SCHEMA_LOCK})
                    for statement in _DDL:
                        conn.execute(text(statement))
        except DBAPIError as e:
            message = _reason(e)
            if "vector" in message and ("extension" in message or "type" in message):
                raise VectorIndexError(
                    f"the pgvector extension is not available on this PostgreSQL ({message}); install it "
                    "(Debian: postgresql-<version>-pgvector) or use IVR_RAG_BACKEND=faiss") from e
            raise VectorIndexError(f"cannot prepare the pgvector tables: {message}") from e
        except SQLAlchemyError as e:
            raise VectorIndexError(f"cannot prepare the pgvector tables: {e}") from e
        _ready.add(self.engine)

    def _failed(self, e: Exception) -> None:
        """Forget that the tables exist when PostgreSQL says one is missing (made again next call)."""
        if _sqlstate(e) == _UNDEFINED_TABLE:
            _ready.discard(self.engine)

    def _lock_writers(self, conn: Connection) -> None:
        conn.execute(text("SELECT pg_advisory_xact_lock(CAST(:n AS integer), CAST(:t AS integer))"),
                     {"n": _WRITER_NAMESPACE, "t": self.tenant_id})

    # ------------------------------------------------------------------ reading

    def info(self) -> IndexInfo | None:
        self.ensure_schema()
        try:
            with self.engine.connect() as conn:
                row = conn.execute(text("SELECT model, dimension, count, generation, updated_at FROM rag_index_meta "
                                        "WHERE tenant_id = :t"), {"t": self.tenant_id}).first()
        except SQLAlchemyError as e:
            self._failed(e)
            raise VectorIndexError(f"cannot read the index of tenant {self.tenant_id}: {_reason(e)}") from e
        if row is None:
            return None
        return IndexInfo(model=row[0], dimension=int(row[1]), count=int(row[2]), generation=row[3],
                         updated_at=float(row[4]))

    def ids(self) -> set[int]:
        self.ensure_schema()
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(text("SELECT chunk_id FROM rag_vectors WHERE tenant_id = :t"),
                                    {"t": self.tenant_id})
                return {int(r[0]) for r in rows}
        except SQLAlchemyError as e:
            self._failed(e)
            raise VectorIndexError(f"cannot read the index of tenant {self.tenant_id}: {_reason(e)}") from e

    def search(self, vector: np.ndarray, k: int, *, timeout: float) -> list[Hit]:
        query = np.asarray(vector, dtype=np.float32).ravel()
        self.ensure_schema()
        try:
            with self.engine.connect() as conn, conn.begin():
                # One round trip: the index's identity, and the timeout of the statements after it.
                meta = conn.execute(text(
                    "SELECT count, dimension, set_config('statement_timeout', :ms, true) FROM rag_index_meta "
                    "WHERE tenant_id = :t"), {"t": self.tenant_id, "ms": str(max(1, int(timeout * 1000)))}).first()
                if meta is None:
                    raise IndexMissing(f"tenant {self.tenant_id} has no document index yet (ivr docs ingest)")
                count, dimension = int(meta[0]), int(meta[1])
                if count == 0 or k <= 0:
                    return []
                if query.shape[0] != dimension:
                    raise RetrievalFailed(f"query has dimension {query.shape[0]}, the index {dimension}")
                rows = conn.execute(text(
                    "SELECT chunk_id, embedding <#> CAST(:q AS vector) AS distance FROM rag_vectors "
                    "WHERE tenant_id = :t ORDER BY distance LIMIT :k"),
                    {"q": vector_literal(query), "t": self.tenant_id, "k": int(k)}).all()
        except SQLAlchemyError as e:
            self._failed(e)
            if _sqlstate(e) == _QUERY_CANCELED:
                raise RetrievalFailed(f"pgvector search did not finish within {timeout:g}s") from e
            raise RetrievalFailed(f"pgvector search failed: {_reason(e)}") from e
        return [Hit(int(r[0]), -float(r[1])) for r in rows]

    # ------------------------------------------------------------------ writing

    def apply(self, *, model: str, dimension: int, remove: Iterable[int], add_ids: Sequence[int],
              add_vectors: np.ndarray, replace_all: bool = False) -> IndexInfo:
        import psycopg

        vectors = check_vectors(add_ids, add_vectors, dimension)
        check_ids(add_ids)
        self.ensure_schema()
        params: dict[str, Any] = {"t": self.tenant_id}
        try:
            with self.engine.begin() as conn:
                self._lock_writers(conn)
                current = conn.execute(text("SELECT model, dimension FROM rag_index_meta WHERE tenant_id = :t"),
                                       params).first()
                if replace_all:
                    conn.execute(text("DELETE FROM rag_vectors WHERE tenant_id = :t"), params)
                else:
                    if current is not None and (current[0] != model or int(current[1]) != dimension):
                        raise VectorIndexError(
                            f"the index was built with {current[0]!r} ({current[1]} dimensions); refusing vectors "
                            f"of {model!r} ({dimension}); rebuild it with ivr docs reindex")
                    gone = sorted({int(i) for i in remove} | {int(i) for i in add_ids})
                    if gone:
                        conn.execute(text("DELETE FROM rag_vectors WHERE tenant_id = :t "
                                          "AND chunk_id = ANY(CAST(:ids AS integer[]))"), {**params, "ids": gone})
                if len(add_ids):
                    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(_COPY) as copy:
                        for block in copy_blocks(self.tenant_id, add_ids, vectors):
                            copy.write(block)
                count = int(conn.execute(text("SELECT count(*) FROM rag_vectors WHERE tenant_id = :t"),
                                         params).scalar() or 0)
                info = IndexInfo(model=model, dimension=dimension, count=count,
                                 generation=f"{time.time_ns():x}-{uuid.uuid4().hex[:8]}", updated_at=time.time())
                conn.execute(text(
                    "INSERT INTO rag_index_meta (tenant_id, model, dimension, count, generation, updated_at) "
                    "VALUES (:t, :m, :d, :n, :g, :u) ON CONFLICT (tenant_id) DO UPDATE SET model = EXCLUDED.model, "
                    "dimension = EXCLUDED.dimension, count = EXCLUDED.count, generation = EXCLUDED.generation, "
                    "updated_at = EXCLUDED.updated_at"),
                    {**params, "m": model, "d": dimension, "n": count, "g": info.generation, "u": info.updated_at})
        except (SQLAlchemyError, psycopg.Error) as e:
            self._failed(e)
            raise VectorIndexError(f"cannot write the index of tenant {self.tenant_id}: {_reason(e)}") from e
        log.info("rag.index_written", tenant_id=self.tenant_id, backend="pgvector", count=info.count,
                 added=len(add_ids), generation=info.generation)
        return info

    def drop(self) -> None:
        self.ensure_schema()
        try:
            with self.engine.begin() as conn:
                self._lock_writers(conn)
                conn.execute(text("DELETE FROM rag_vectors WHERE tenant_id = :t"), {"t": self.tenant_id})
                conn.execute(text("DELETE FROM rag_index_meta WHERE tenant_id = :t"), {"t": self.tenant_id})
        except SQLAlchemyError as e:
            self._failed(e)
            raise VectorIndexError(f"cannot drop the index of tenant {self.tenant_id}: {_reason(e)}") from e
