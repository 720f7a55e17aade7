"""The pgvector backend against a real PostgreSQL with pgvector (`pgvector_url`: IVR_TEST_PGVECTOR_URL, else
a pgserver started once per session): the `VectorIndex` contract, run against faiss and pgvector alike;
tenants sharing one table; writes that fail or die midway leaving the previous index whole; one index
shared by separately created engines (the real ``ivr docs ingest`` in a subprocess, a controller's
retriever in this process); searches that leave the gevent hub free and time out as `RetrievalFailed`;
a role without CREATE rights; and the "extension missing" error on a PostgreSQL without pgvector."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import numpy as np
import psycopg
import pytest
from rag_fakes import HashEmbeddings
from rag_harness import KNOWLEDGE
from sqlalchemy import Engine, text

from rag.errors import IndexMissing, RetrievalFailed, VectorIndexError
from rag.faiss_index import FaissIndex
from rag.ingest import Ingester
from rag.pgvector_index import PgVectorIndex
from rag.retriever import Retriever
from rag.vector_index import VectorIndex
from schema.database import libpq_conninfo, make_engine, make_session_factory, normalize_url
from schema.migrate import upgrade
from schema.store import TenantStore
from schema.tenants import add_tenant

DIM = 16
MODEL = "embeddings:test:unit:16"


def unit(n: int, seed: int, dim: int = DIM) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def exact_top(vectors: np.ndarray, ids: list[int], query: np.ndarray, k: int) -> list[tuple[int, float]]:
    scores = vectors @ query
    order = np.argsort(-scores, kind="stable")[:k]
    return [(ids[i], float(scores[i])) for i in order]


def hits_of(index: VectorIndex, query: np.ndarray, k: int = 5) -> list[tuple[int, float]]:
    return [(h.chunk_id, h.score) for h in index.search(query, k, timeout=10)]


def same_hits(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> bool:
    return [i for i, _ in got] == [i for i, _ in want] and np.allclose([s for _, s in got], [s for _, s in want],
                                                                       atol=1e-5)


@pytest.fixture
def pg_engine(pgvector_url: str) -> Iterator[Engine]:
    engine = make_engine(pgvector_url)
    yield engine
    engine.dispose()


@pytest.fixture
def other_engine(pgvector_url: str) -> Iterator[Engine]:
    """A second engine on the same database (another controller process, as far as pooling goes)."""
    engine = make_engine(pgvector_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["faiss", "pgvector"])
def open_index(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[int], VectorIndex]:
    """A tenant id → that tenant's index, in each backend (the contract tests run on both)."""
    if request.param == "faiss":
        return lambda tenant: FaissIndex(tmp_path / "rag", tenant)
    engine = request.getfixturevalue("pg_engine")
    return lambda tenant: PgVectorIndex(engine, tenant)


def connect(url: str) -> psycopg.Connection[Any]:
    """A plain psycopg connection (for locks and catalog queries beside the index's own engine)."""
    return psycopg.connect(libpq_conninfo(url), connect_timeout=5)


# ---------------------------------------------------------------------- the VectorIndex contract


def test_a_tenant_without_an_index(open_index: Callable[[int], VectorIndex]) -> None:
    index = open_index(1)
    assert index.info() is None and index.ids() == set()
    with pytest.raises(IndexMissing):
        index.search(unit(1, 0)[0], 3, timeout=5)
    index.drop()                                  # dropping nothing is fine
    assert index.info() is None


def test_search_ranks_by_cosine_like_exact_search(open_index: Callable[[int], VectorIndex]) -> None:
    index = open_index(1)
    vectors, ids = unit(60, 1), list(range(100, 160))
    info = index.apply(model=MODEL, dimension=DIM, remove=[], add_ids=ids, add_vectors=vectors)
    assert (info.model, info.dimension, info.count) == (MODEL, DIM, 60) and info.generation
    assert index.info() == info and index.ids() == set(ids)
    for query in [*vectors[[0, 17, 59]], *unit(5, 2)]:
        assert same_hits(hits_of(index, query), exact_top(vectors, ids, query, 5))
    hits = index.search(vectors[17], 1, timeout=5)
    assert hits[0].chunk_id == 117 and hits[0].score == pytest.approx(1.0, abs=1e-5)


def test_add_remove_replace_and_replace_all(open_index: Callable[[int], VectorIndex]) -> None:
    index = open_index(1)
    vectors = unit(10, 3)
    first = index.apply(model=MODEL, dimension=DIM, remove=[], add_ids=list(range(1, 11)), add_vectors=vectors)
    fresh = unit(2, 4)
    # Remove 1 and 2, add 11, and give 3 a new vector (an id that is added again replaces its vector).
    second = index.apply(model=MODEL, dimension=DIM, remove=[1, 2], add_ids=[11, 3], add_vectors=fresh)
    assert second.count == 9 and second.generation != first.generation
    assert index.ids() == {3, 4, 5, 6, 7, 8, 9, 10, 11}
    assert index.search(fresh[1], 1, timeout=5)[0].chunk_id == 3
    assert index.search(fresh[0], 1, timeout=5)[0].chunk_id == 11
    assert all(h.chunk_id not in (1, 2) for h in index.search(vectors[0], 9, timeout=5))
    # Removing ids the index does not hold changes nothing else.
    assert index.apply(model=MODEL, dimension=DIM, remove=[404], add_ids=[],
                       add_vectors=np.zeros((0, DIM), dtype=np.float32)).count == 9
    # replace_all starts from empty, and may change the model and the width.
    wide = unit(3, 5, dim=24)
    rebuilt = index.apply(model="embeddings:test:wide:24", dimension=24, remove=[], add_ids=[20, 21, 22],
                          add_vectors=wide, replace_all=True)
    assert (rebuilt.model, rebuilt.dimension, rebuilt.count) == ("embeddings:test:wide:24", 24, 3)
    assert index.ids() == {20, 21, 22}
    assert index.search(wide[2], 1, timeout=5)[0].chunk_id == 22


def test_another_model_or_width_is_refused(open_index: Callable[[int], VectorIndex]) -> None:
    index = open_index(1)
    before = index.apply(model=MODEL, dimension=DIM, remove=[], add_ids=[1, 2], add_vectors=unit(2, 6))
    with pytest.raises(VectorIndexError, match="refusing"):
        index.apply(model="embeddings:test:other:16", dimension=DIM, remove=[], add_ids=[3], add_vectors=unit(1, 7))
    with pytest.raises(VectorIndexError, match="refusing"):
        index.apply(model=MODEL, dimension=8, remove=[], add_ids=[3], add_vectors=unit(1, 7, dim=8))
    with pytest.raises(ValueError, match="dimension"):
        index.apply(model=MODEL, dimension=DIM, remove=[], add_ids=[3, 4], add_vectors=unit(1, 7))
    bad = unit(1, 7)
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        index.apply(model=MODEL, dimension=DIM, remove=[], add_ids=[3], add_vectors=bad)
    assert index.info() == before and index.ids() == {1, 2}
    with pytest.raises(RetrievalFailed, match="dimension"):
        index.search(unit(1, 8, dim=8)[0], 3, timeout=5)


def test_an_empty_index_and_k_below_one(open_index: Callable[[int], VectorIndex]) -> None:
    index = open_index(1)
    empty = index.apply(model=MODEL, dimension=DIM, remove=[], add_ids=[],
                        add_vectors=np.zeros((0, DIM), dtype=np.float32))
    assert empty.count == 0 and index.info() == empty and index.ids() == set()
    assert index.search(unit(1, 9)[0], 4, timeout=5) == []
    index.apply(model=MODEL, dimension=DIM, remove=[], add_ids=[1, 2, 3], add_vectors=unit(3, 10))
    query = unit(1, 11)[0]
    assert index.search(query, 0, timeout=5) == [] and index.search(query, -1, timeout=5) == []
    assert sorted(h.chunk_id for h in index.search(query, 50, timeout=5)) == [1, 2, 3]


def test_drop_touches_one_tenant(open_index: Callable[[int], VectorIndex]) -> None:
    dental, bakery = open_index(1), open_index(2)
    dental.apply(model=MODEL, dimension=DIM, remove=[], add_ids=[1, 2], add_vectors=unit(2, 12))
    kept = bakery.apply(model=MODEL, dimension=DIM, remove=[], add_ids=[3], add_vectors=unit(1, 13))
    dental.drop()
    assert dental.info() is None and dental.ids() == set()
    with pytest.raises(IndexMissing):
        dental.search(unit(1, 14)[0], 3, timeout=5)
    assert bakery.info() == kept and bakery.ids() == {3}


# ---------------------------------------------------------------------- pgvector: one table, many tenants


def test_tenants_share_the_table_never_a_result(pg_engine: Engine) -> None:
    dental, bakery = PgVectorIndex(pg_engine, 1), PgVectorIndex(pg_engine, 2)
    ids = list(range(1, 21))
    dental_vectors, bakery_vectors = unit(20, 15), unit(20, 16)
    dental.apply(model=MODEL, dimension=DIM, remove=[], add_ids=ids, add_vectors=dental_vectors)
    # The same chunk ids under another tenant (a forged or colliding id) are that tenant's own rows.
    bakery.apply(model=MODEL, dimension=DIM, remove=[], add_ids=ids, add_vectors=bakery_vectors)
    for query in bakery_vectors[:5]:
        assert same_hits(hits_of(dental, query, 20), exact_top(dental_vectors, ids, query, 20))
        assert same_hits(hits_of(bakery, query, 20), exact_top(bakery_vectors, ids, query, 20))
    # Removing, replacing and dropping in one tenant leave the other's rows alone.
    bakery.apply(model=MODEL, dimension=DIM, remove=[1, 2, 3], add_ids=[4], add_vectors=unit(1, 17))
    dental.apply(model=MODEL, dimension=DIM, remove=[], add_ids=[50], add_vectors=unit(1, 18), replace_all=True)
    assert dental.ids() == {50} and bakery.ids() == set(range(4, 21))
    bakery.drop()
    with pg_engine.connect() as conn:
        rows = conn.execute(text("SELECT tenant_id, count(*) FROM rag_vectors GROUP BY tenant_id")).all()
    assert [tuple(r) for r in rows] == [(1, 1)]


# ---------------------------------------------------------------------- pgvector: atomic writes


def test_a_write_that_fails_midway_leaves_the_previous_index(pg_engine: Engine) -> None:
    index = PgVectorIndex(pg_engine, 1)
    vectors, ids = unit(30, 19), list(range(1, 31))
    before = index.apply(model=MODEL, dimension=DIM, remove=[], add_ids=ids, add_vectors=vectors)
    probe = unit(3, 20)
    expected = [hits_of(index, q) for q in probe]
    # The DELETE of 1..10 runs, then the COPY hits the primary key (id 99 twice) and the transaction
    # rolls back; the same with replace_all, whose first statement empties the tenant.
    for replace_all in (False, True):
        with pytest.raises(VectorIndexError, match="cannot write the index"):
            index.apply(model=MODEL, dimension=DIM, remove=list(range(1, 11)), add_ids=[99, 99],
                        add_vectors=unit(2, 21), replace_all=replace_all)
        assert index.info() == before and index.ids() == set(ids)
        assert [hits_of(index, q) for q in probe] == expected


def test_writers_of_one_tenant_take_turns(pg_engine: Engine, other_engine: Engine) -> None:
    # Two ingests of a tenant that has no index yet, in two processes' engines at once.
    first, second = PgVectorIndex(pg_engine, 1), PgVectorIndex(other_engine, 1)
    first.ensure_schema()
    second.ensure_schema()
    writers = [gevent.spawn(index.apply, model=MODEL, dimension=DIM, remove=[], add_ids=ids,
                            add_vectors=unit(len(ids), seed))
               for index, ids, seed in ((first, list(range(1, 301)), 33), (second, list(range(301, 601)), 34))]
    gevent.joinall(writers, timeout=60)
    assert [w.successful() for w in writers] == [True, True], [w.exception for w in writers]
    assert sorted(w.value.count for w in writers) == [300, 600]
    info = first.info()
    assert info is not None and info.count == 600 and first.ids() == set(range(1, 601))


def test_a_writer_killed_before_commit_leaves_the_previous_index(pgvector_url: str, pg_engine: Engine,
                                                                  other_engine: Engine) -> None:
    index = PgVectorIndex(pg_engine, 1)
    vectors, ids = unit(30, 22), list(range(1, 31))
    before = index.apply(model=MODEL, dimension=DIM, remove=[], add_ids=ids, add_vectors=vectors)
    probe = unit(3, 23)
    expected = [hits_of(index, q) for q in probe]
    reader = PgVectorIndex(other_engine, 1)
    with connect(pgvector_url) as locker, connect(pgvector_url) as watcher:
        watcher.autocommit = True
        # Hold the tenant's index row: the writer deletes and copies, then waits at its last statement.
        locker.execute("SELECT 1 FROM rag_index_meta WHERE tenant_id = 1 FOR UPDATE")
        writer = gevent.spawn(index.apply, model=MODEL, dimension=DIM, remove=list(range(1, 21)),
                              add_ids=[100, 101], add_vectors=unit(2, 24), replace_all=False)
        pid = None
        for _ in range(400):
            row = watcher.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND "
                                  "wait_event_type = 'Lock' AND query LIKE 'INSERT INTO rag_index_meta%'").fetchone()
            if row is not None:
                pid = row[0]
                break
            gevent.sleep(0.025)
        assert pid is not None, "the writer never reached its last statement"
        # Its deletes and inserts are done but not committed: a reader sees the previous index.
        assert reader.info() == before and reader.ids() == set(ids)
        assert [hits_of(reader, q) for q in probe] == expected
        watcher.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(VectorIndexError, match="cannot write the index"):
            writer.get(timeout=30)
        locker.rollback()
    assert index.info() == before and index.ids() == set(ids)
    assert [hits_of(index, q) for q in probe] == expected


# ---------------------------------------------------------------------- pgvector: the hub and timeouts


def test_a_search_leaves_the_hub_free_and_times_out_as_retrieval_failed(pgvector_url: str,
                                                                         pg_engine: Engine) -> None:
    index = PgVectorIndex(pg_engine, 1)
    vectors, ids = unit(40, 25), list(range(1, 41))
    index.apply(model=MODEL, dimension=DIM, remove=[], add_ids=ids, add_vectors=vectors)
    query = unit(1, 26)[0]
    expected = exact_top(vectors, ids, query, 4)
    ticks = [0]

    def tick() -> None:
        while True:
            ticks[0] += 1
            gevent.sleep(0.005)

    ticker = gevent.spawn(tick)
    try:
        with connect(pgvector_url) as locker, connect(pgvector_url) as watcher:
            watcher.autocommit = True
            # A table lock makes the search wait inside PostgreSQL until we release it.
            locker.execute("LOCK TABLE rag_vectors IN ACCESS EXCLUSIVE MODE")
            # A statement that cannot finish in its time is cancelled by PostgreSQL: RetrievalFailed.
            with pytest.raises(RetrievalFailed, match=r"did not finish within 0\.3s"):
                index.search(query, 4, timeout=0.3)
            search = gevent.spawn(index.search, query, 4, timeout=20)
            waiting = False
            for _ in range(400):
                if search.ready():
                    break
                waiting = watcher.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                          "AND wait_event_type = 'Lock' AND query LIKE '%ORDER BY distance%'"
                                          ).fetchone()[0] == 1
                if waiting:
                    break
                gevent.sleep(0.025)
            assert not search.ready(), f"the search ended while the table was locked (it held the hub): " \
                                       f"{search.exception!r}"
            assert waiting, "the search never reached PostgreSQL"
            # While the search waits in PostgreSQL, other greenlets run.
            seen = ticks[0]
            for _ in range(1000):
                if ticks[0] >= seen + 10:
                    break
                gevent.sleep(0.005)
            assert ticks[0] >= seen + 10 and not search.ready()
            locker.rollback()
            hits = search.get(timeout=30)
    finally:
        ticker.kill(timeout=5)
    assert same_hits([(h.chunk_id, h.score) for h in hits], expected)
    # The connection that timed out went back to the pool in a usable state.
    assert same_hits(hits_of(index, query, 4), expected)


# ---------------------------------------------------------------------- pgvector: schema and privileges


def test_a_role_without_create_rights_uses_tables_an_owner_made(pgvector_url: str, pg_engine: Engine) -> None:
    owner = PgVectorIndex(pg_engine, 1)
    vectors = unit(5, 27)
    owner.apply(model=MODEL, dimension=DIM, remove=[], add_ids=[1, 2, 3, 4, 5], add_vectors=vectors)
    role = f"ivr_ctl_{uuid.uuid4().hex[:8]}"
    with connect(pgvector_url) as admin:
        admin.autocommit = True
        try:
            admin.execute(f'CREATE ROLE "{role}" LOGIN')
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("this PostgreSQL user may not create roles")
        try:
            admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            admin.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON rag_vectors, rag_index_meta TO "{role}"')
            engine = make_engine(normalize_url(pgvector_url).set(username=role, password=None))
            try:
                controller = PgVectorIndex(engine, 1)
                assert controller.search(vectors[2], 1, timeout=5)[0].chunk_id == 3
                controller.apply(model=MODEL, dimension=DIM, remove=[1], add_ids=[6], add_vectors=unit(1, 28))
                assert controller.ids() == {2, 3, 4, 5, 6}
            finally:
                engine.dispose()
        finally:
            admin.execute(f'DROP OWNED BY "{role}"')
            admin.execute(f'DROP ROLE "{role}"')


def test_controllers_starting_together_make_the_tables_once(pgvector_url: str) -> None:
    engines = [make_engine(pgvector_url) for _ in range(4)]
    try:
        starts = [gevent.spawn(PgVectorIndex(engine, n).info) for n, engine in enumerate(engines)]
        gevent.joinall(starts, timeout=60)
        assert [g.successful() for g in starts] == [True] * 4, [g.exception for g in starts]
    finally:
        for engine in engines:
            engine.dispose()


def test_tables_dropped_behind_its_back_are_made_again(pgvector_url: str, pg_engine: Engine) -> None:
    index = PgVectorIndex(pg_engine, 1)
    index.apply(model=MODEL, dimension=DIM, remove=[], add_ids=[1], add_vectors=unit(1, 29))
    with connect(pgvector_url) as admin:
        admin.execute("DROP TABLE rag_vectors, rag_index_meta")
        admin.commit()
    with pytest.raises(VectorIndexError, match="rag_index_meta"):
        index.info()
    assert index.info() is None                 # the next call made the tables again
    assert index.apply(model=MODEL, dimension=DIM, remove=[], add_ids=[2], add_vectors=unit(1, 30)).count == 1


@pytest.mark.postgres
def test_a_postgresql_without_the_extension_is_a_clear_error(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            available = conn.execute(text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first()
        if available is not None:
            pytest.skip("this PostgreSQL has pgvector; the missing-extension error needs one without")
        index = PgVectorIndex(engine, 1)
        for call in (index.info, index.ids, lambda: index.search(unit(1, 31)[0], 3, timeout=5)):
            with pytest.raises(VectorIndexError, match="pgvector extension is not available"):
                call()
    finally:
        engine.dispose()


# ---------------------------------------------------------------------- ingest and retrieval on pgvector


@pytest.fixture
def pg_tenants(pg_engine: Engine) -> dict[str, TenantStore]:
    """The tenants' chunks in the same PostgreSQL database as their vectors (the shared deployment)."""
    upgrade(pg_engine)
    sessions = make_session_factory(pg_engine)
    return {name: TenantStore(sessions, add_tenant(sessions, name).id) for name in ("dental.example", "bakery.example")}


def test_ingest_update_repair_remove_reindex(tmp_path: Path, pg_engine: Engine,
                                             pg_tenants: dict[str, TenantStore]) -> None:
    from schema.store import ChunkInput

    store = pg_tenants["dental.example"]
    kb = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE, kb, ignore=shutil.ignore_patterns("*.py"))
    ing = Ingester(store, PgVectorIndex(pg_engine, store.tenant_id), HashEmbeddings())
    assert {r.status for r in ing.ingest([kb])} == {"added"}
    assert {r.status for r in ing.ingest([kb])} == {"unchanged"}
    assert ing.index.ids() == {c.id for c in store.chunks()}
    retriever = Retriever(store, ing.index, ing.embeddings)
    assert retriever.retrieve("saturday opening hours").passages[0].source == "hours.md"
    (kb / "hours.md").write_text("# Hours\n\nWe are now open on Sundays from 10 am to 2 pm.\n")
    again = {Path(r.path).name: r.status for r in ing.ingest([kb])}
    assert again["hours.md"] == "updated" and again["prices.html"] == "unchanged"
    hit = retriever.retrieve("open on sundays").passages[0]
    assert hit.source == "hours.md" and "Sundays from 10 am" in hit.text
    # A refused file leaves the index as it was.
    before = ing.index.info()
    (kb / "hours.md").write_bytes(b"\x00\x01binary junk" * 100)
    assert {Path(r.path).name: r.status for r in ing.ingest([kb])}["hours.md"] == "failed"
    assert ing.index.info() == before
    # As if a process died between the database write and the index write: repair heals it.
    store.add_document("/kb/late.md", sha256="0" * 64, title="Late", embedding_model=before.model,
                       chunks=[ChunkInput("Late appointments after 6 pm cost extra.", 0, {"heading": "Late"})])
    stale = max(c.id for c in store.chunks()) + 1000
    ing.index.apply(model=before.model, dimension=256, remove=[], add_ids=[stale],
                    add_vectors=ing.embeddings.embed(["ghost"]))
    report = ing.repair()
    assert (report.embedded, report.dropped) == (1, 1)
    assert ing.index.ids() == {c.id for c in store.chunks()}
    assert retriever.retrieve("late appointments").passages[0].source == "late.md"
    # Remove a document, then rebuild with another model.
    assert ing.remove("prices.html").status == "removed"
    assert ing.index.ids() == {c.id for c in store.chunks()}
    other = Ingester(store, ing.index, HashEmbeddings({"model": "hash-v2"}))
    assert other.reindex().info.model == "embeddings:hash:hash-v2:256"
    assert Retriever(store, other.index, other.embeddings).retrieve("parking").passages[0].source == "location.txt"


@pytest.mark.models
@pytest.mark.slow
@pytest.mark.timeout(400)           # two CLI processes, each loading MiniLM
def test_controllers_share_the_index_the_cli_ingests(tmp_path: Path, pgvector_url: str, other_engine: Engine) -> None:
    from providers.registry import build
    from rag.services import tenant_retriever
    from rag.settings import RagSettings

    setup = make_engine(pgvector_url)
    upgrade(setup)
    tenant = add_tenant(make_session_factory(setup), "dental.example")
    setup.dispose()
    kb = tmp_path / "kb"
    kb.mkdir()
    for name in ("hours.md", "prices.html"):
        shutil.copy(KNOWLEDGE / name, kb / name)
    env = {**os.environ, "IVR_DATABASE_URL": pgvector_url, "IVR_RAG_BACKEND": "pgvector",
           "IVR_RAG_DIR": str(tmp_path / "no-faiss-here"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    ingest = [str(Path(sys.executable).with_name("ivr")), "docs", "ingest", "dental.example", str(kb)]

    first = subprocess.run(ingest, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert first.returncode == 0, first.stderr
    assert "added     " in first.stdout and "hours.md" in first.stdout and "prices.html" in first.stdout
    # Another controller: its own engine and retriever, built the way a controller builds them.
    embeddings = build("embeddings", "sentence_transformers")
    embeddings.embed(["warm up"])
    retriever = tenant_retriever(other_engine, tenant.id, embeddings, settings=RagSettings(backend="pgvector"),
                                 timeout=60)
    assert retriever.index.backend == "pgvector"
    hit = retriever.retrieve("When are you open on Saturday?").passages[0]
    assert hit.source == "hours.md" and "9 am to 1 pm" in hit.text

    (kb / "hours.md").write_text("# Opening hours\n\nFrom March we are also open on Sundays from 10 am to 2 pm.\n")
    second = subprocess.run(ingest, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert second.returncode == 0, second.stderr
    assert "updated" in second.stdout and "unchanged" in second.stdout
    # The same retriever, no reload: it reads the new index and the new chunks.
    hit = retriever.retrieve("Are you open on Sunday?").passages[0]
    assert hit.source == "hours.md" and "Sundays from 10 am" in hit.text
    passages = retriever.retrieve("When are you open on Saturday?", k=10).passages
    assert passages and not any("9 am to 1 pm" in p.text for p in passages)
    assert not (tmp_path / "no-faiss-here").exists()

