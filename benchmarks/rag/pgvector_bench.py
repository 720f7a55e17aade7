"""The pgvector half of the retrieval benchmark (``run.py --only retrieval --backend faiss,pgvector``).

Owns: a PostgreSQL with pgvector for the run (``--pg-url``, else ``$IVR_TEST_PGVECTOR_URL``, else a
``pgserver`` (PostgreSQL 16 + pgvector 0.6, the ``test`` extra) started in a temp folder and stopped at
the end), and per size one fresh database holding the tenant's chunks and vectors, as a shared
deployment has them. It measures, on the very vectors and queries of the faiss rows: the raw SQL
(``ORDER BY embedding <#> q LIMIT 4`` on a plain psycopg connection), `PgVectorIndex.search` (statement
timeout, index identity and search in one transaction) and `Retriever.retrieve` (+ the chunk lookup,
here in PostgreSQL).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

_START = "import sys, pgserver\nprint(pgserver.get_server(sys.argv[1], cleanup_mode=None).get_uri(), flush=True)\n"
_STOP = "import sys, pgserver\npgserver.get_server(sys.argv[1], cleanup_mode='stop').cleanup()\n"


def _pgserver(script: str, pgdata: Path) -> str:
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", script, str(pgdata)], capture_output=True,
                            text=True, timeout=120, check=True)
    return result.stdout.strip()


@contextmanager
def pgvector_server(url: str | None) -> Iterator[str]:
    """An SQLAlchemy URL of a PostgreSQL with pgvector for the length of the run."""
    from schema.database import normalize_url

    url = url or os.environ.get("IVR_TEST_PGVECTOR_URL", "").strip() or None
    if url:
        yield normalize_url(url).render_as_string(hide_password=False)
        return
    folder = Path(tempfile.mkdtemp(prefix="ivr-bench-pgvector-"))
    pgdata = folder / "pgdata"
    try:
        yield normalize_url(_pgserver(_START, pgdata)).render_as_string(hide_password=False)
    finally:
        if (pgdata / "postmaster.pid").exists():
            _pgserver(_STOP, pgdata)
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def fresh_database(admin: str) -> Iterator[str]:
    import psycopg

    from schema.database import libpq_conninfo, normalize_url

    name = f"ivr_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(libpq_conninfo(admin), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield normalize_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq_conninfo(admin), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_pgvector(admin: str, size: int, vectors: np.ndarray, queries: np.ndarray,
                   make_embeddings: Callable[[np.ndarray], Any],
                   summary: Callable[[list[float]], dict[str, float]]) -> dict[str, Any]:
    """p50/p99 (ms) of raw SQL, `PgVectorIndex.search` and `Retriever.retrieve` over `size` chunks."""
    import psycopg

    from rag.embedding_model import model_id
    from rag.pgvector_index import PgVectorIndex, vector_literal
    from rag.retriever import Retriever
    from schema.database import libpq_conninfo, make_engine, make_session_factory
    from schema.migrate import upgrade
    from schema.store import ChunkInput, TenantStore
    from schema.tenants import add_tenant

    with fresh_database(admin) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            sessions = make_session_factory(engine)
            store = TenantStore(sessions, add_tenant(sessions, f"t{size}.example").id)
            started = time.perf_counter()
            for start in range(0, size, 5000):
                count = min(5000, size - start)
                store.add_document(f"/bench/doc-{start}.md", sha256="0" * 64, title=f"doc {start}",
                                   embedding_model="m",
                                   chunks=[ChunkInput(f"Chunk {start + i} says something about topic {i}.", i,
                                                      {"heading": "Bench"}) for i in range(count)])
            ids = [c.id for c in store.chunks()]
            embeddings = make_embeddings(queries)
            index = PgVectorIndex(engine, store.tenant_id)
            applied = time.perf_counter()
            index.apply(model=model_id(embeddings), dimension=int(vectors.shape[1]), remove=[], add_ids=ids,
                        add_vectors=vectors)
            apply_s = time.perf_counter() - applied
            build_s = time.perf_counter() - started
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE rag_vectors")
            raw, ours_search, ours_full = [], [], []
            sql = ("SELECT chunk_id, embedding <#> %s::vector AS distance FROM rag_vectors WHERE tenant_id = %s "
                   "ORDER BY distance LIMIT 4")
            with psycopg.connect(libpq_conninfo(url), autocommit=True) as conn:
                for q in queries[:20]:                 # warm the connection, plans and caches
                    conn.execute(sql, (vector_literal(q), store.tenant_id), prepare=True).fetchall()
                    index.search(q, 4, timeout=10)
                for q in queries:
                    t = time.perf_counter()
                    conn.execute(sql, (vector_literal(q), store.tenant_id), prepare=True).fetchall()
                    raw.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    index.search(q, 4, timeout=10)
                    ours_search.append((time.perf_counter() - t) * 1000)
            retriever = Retriever(store, index, embeddings, k=4, timeout=10)
            for _ in range(len(queries)):
                t = time.perf_counter()
                retriever.retrieve("bench question")
                ours_full.append((time.perf_counter() - t) * 1000)
        finally:
            engine.dispose()
    return {"build_s": round(build_s, 2), "apply_s": round(apply_s, 2), "raw_sql_ms": summary(raw),
            "ours_search_ms": summary(ours_search), "ours_retrieve_ms": summary(ours_full)}
