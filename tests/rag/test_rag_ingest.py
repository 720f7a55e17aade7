"""Ingesting into a real SQLite database and real faiss files: updates, atomic index writes, repair,
tenant isolation, embedding-model identity and the `ivr docs` commands. (The pgvector backend, and
the index contract both backends share, are tested in test_rag_pgvector.py.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from rag_fakes import HashEmbeddings
from rag_harness import KNOWLEDGE, make_database

from rag import faiss_index
from rag.errors import EmbeddingModelMismatch, IndexMissing, VectorIndexError
from rag.faiss_index import FaissIndex
from rag.ingest import Ingester
from rag.retriever import Retriever


@pytest.fixture
def tenants(tmp_path: Path) -> dict[str, Any]:
    engine, stores = make_database(tmp_path, "dental.example", "bakery.example")
    return {"engine": engine, **stores}


def ingester(tmp_path: Path, store: Any, **settings: Any) -> Ingester:
    return Ingester(store, FaissIndex(tmp_path / "rag", store.tenant_id), HashEmbeddings(settings))


def copy_knowledge(tmp_path: Path) -> Path:
    target = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE, target, ignore=shutil.ignore_patterns("*.py"))
    return target


def test_ingest_then_unchanged_then_updated(tmp_path: Path, tenants: dict[str, Any]) -> None:
    store = tenants["dental.example"]
    kb = copy_knowledge(tmp_path)
    ing = ingester(tmp_path, store)
    first = ing.ingest([kb])
    assert [(Path(r.path).name, r.status) for r in first] == [
        ("hours.md", "added"), ("location.txt", "added"), ("new-patients.pdf", "added"), ("policies.md", "added"),
        ("prices.html", "added")]
    info = ing.index.info()
    assert info is not None and info.count == sum(r.chunks for r in first) == len(store.chunks())
    assert info.model == "embeddings:hash:hash-v1:256"
    assert {r.status for r in ing.ingest([kb])} == {"unchanged"}
    # Change one file: its chunks are replaced, the others stay.
    (kb / "hours.md").write_text("# Hours\n\nWe are now open on Sundays from 10 am to 2 pm.\n")
    again = {Path(r.path).name: r for r in ing.ingest([kb])}
    assert again["hours.md"].status == "updated" and again["hours.md"].chunks == 1
    assert again["prices.html"].status == "unchanged"
    assert ing.index.ids() == {c.id for c in store.chunks()}
    hit = Retriever(store, ing.index, ing.embeddings).retrieve("open on sundays").passages[0]
    assert hit.source == "hours.md" and "Sundays from 10 am" in hit.text


def test_a_refused_file_leaves_the_index_intact(tmp_path: Path, tenants: dict[str, Any]) -> None:
    store = tenants["dental.example"]
    kb = copy_knowledge(tmp_path)
    ing = ingester(tmp_path, store)
    ing.ingest([kb])
    before = ing.index.info()
    (kb / "hours.md").write_bytes(b"\x00\x01binary junk" * 100)
    reports = {Path(r.path).name: r for r in ing.ingest([kb])}
    assert reports["hours.md"].status == "failed" and "NUL bytes" in reports["hours.md"].error
    assert ing.index.info() == before
    hit = Retriever(store, ing.index, ing.embeddings).retrieve("saturday opening hours").passages[0]
    assert hit.source == "hours.md"       # the previous version is still answered


def test_what_a_crashed_writer_leaves_does_not_reach_readers(tmp_path: Path, tenants: dict[str, Any]) -> None:
    store = tenants["dental.example"]
    ing = ingester(tmp_path, store)
    ing.ingest([KNOWLEDGE / "prices.html"])
    before = ing.index.info()
    folder = tmp_path / "rag" / f"tenant-{store.tenant_id}"
    # A writer killed mid-way leaves a half-written generation file and a manifest temp file.
    (folder / "index-ffffffffffffffff-deadbeef.faiss").write_bytes(b"\x00" * 100)
    (folder / ".manifest.json.abc123.tmp").write_text('{"format": 1, "file": "index-ffff')
    faiss_index._cache.clear()
    assert ing.index.info() == before
    hit = Retriever(store, ing.index, ing.embeddings).retrieve("porcelain crown").passages[0]
    assert hit.source == "prices.html"
    ing.ingest([KNOWLEDGE / "policies.md"])
    current = json.loads((folder / "manifest.json").read_text())["file"]
    assert [p.name for p in folder.glob("index-*.faiss")] == [current]


def test_repair_embeds_chunks_the_index_missed(tmp_path: Path, tenants: dict[str, Any]) -> None:
    from schema.store import ChunkInput

    store = tenants["dental.example"]
    ing = ingester(tmp_path, store)
    ing.ingest([KNOWLEDGE / "prices.html"])
    # As if the process died after the database write and before the index write:
    store.add_document("/kb/late.md", sha256="0" * 64, title="Late", embedding_model=ing.index.info().model,
                       chunks=[ChunkInput("Late appointments after 6 pm cost extra.", 0, {"heading": "Late"})])
    stale = max(c.id for c in store.chunks()) + 1000
    ing.index.apply(model=ing.index.info().model, dimension=256, remove=[], add_ids=[stale],
                    add_vectors=ing.embeddings.embed(["ghost"]))
    report = ing.repair()
    assert (report.embedded, report.dropped) == (1, 1)
    assert ing.index.ids() == {c.id for c in store.chunks()}
    assert Retriever(store, ing.index, ing.embeddings).retrieve("late appointments").passages[0].source == "late.md"


def test_a_damaged_index_file_is_an_error_not_garbage(tmp_path: Path, tenants: dict[str, Any]) -> None:
    store = tenants["dental.example"]
    ing = ingester(tmp_path, store)
    ing.ingest([KNOWLEDGE / "prices.html"])
    folder = tmp_path / "rag" / f"tenant-{store.tenant_id}"
    name = json.loads((folder / "manifest.json").read_text())["file"]
    (folder / name).write_bytes(b"garbage")
    faiss_index._cache.clear()
    with pytest.raises(VectorIndexError, match="does not match its manifest"):
        Retriever(store, ing.index, ing.embeddings).retrieve("crown")


def test_remove_and_reindex(tmp_path: Path, tenants: dict[str, Any]) -> None:
    store = tenants["dental.example"]
    ing = ingester(tmp_path, store)
    ing.ingest([KNOWLEDGE])
    removed = ing.remove("prices.html")
    assert removed.status == "removed" and removed.chunks == 4
    assert all(Path(d.source_path).name != "prices.html" for d in store.documents())
    assert ing.index.ids() == {c.id for c in store.chunks()}
    other = Ingester(store, ing.index, HashEmbeddings({"model": "hash-v2"}))
    with pytest.raises(EmbeddingModelMismatch, match="hash-v1"):
        Retriever(store, other.index, other.embeddings).retrieve("parking")
    report = other.reindex()
    assert report.info is not None and report.info.model == "embeddings:hash:hash-v2:256"
    assert Retriever(store, other.index, other.embeddings).retrieve("parking").passages[0].source == "location.txt"


def test_another_model_cannot_add_to_an_index(tmp_path: Path, tenants: dict[str, Any]) -> None:
    store = tenants["dental.example"]
    ingester(tmp_path, store).ingest([KNOWLEDGE / "hours.md"])
    reports = ingester(tmp_path, store, model="hash-v2").ingest([KNOWLEDGE / "prices.html"])
    assert reports[0].status == "failed" and "reindex" in reports[0].error


def test_retrieval_never_crosses_tenants(tmp_path: Path, tenants: dict[str, Any]) -> None:
    dental, bakery = tenants["dental.example"], tenants["bakery.example"]
    ingester(tmp_path, dental).ingest([KNOWLEDGE])
    bread = tmp_path / "bread.md"
    bread.write_text("# Bread\n\nOur sourdough costs 6 dollars. We open at 6 am on Saturdays.\n")
    ing_b = ingester(tmp_path, bakery)
    ing_b.ingest([bread])
    hits = Retriever(bakery, ing_b.index, ing_b.embeddings).retrieve("porcelain crown price saturday", k=10).passages
    assert hits and {h.source for h in hits} == {"bread.md"}
    # Even a vector forged into the bakery's index with a dental chunk id resolves to nothing.
    dental_ids = [c.id for c in dental.chunks()]
    vectors = ing_b.embeddings.embed(["porcelain crown"] * len(dental_ids))
    ing_b.index.apply(model=ing_b.index.info().model, dimension=256, remove=[], add_ids=dental_ids,
                      add_vectors=vectors)
    hits = Retriever(bakery, ing_b.index, ing_b.embeddings).retrieve("porcelain crown", k=30).passages
    assert {h.source for h in hits} == {"bread.md"} and not {h.chunk_id for h in hits} & set(dental_ids)
    with pytest.raises(IndexMissing):
        FaissIndex(tmp_path / "rag", 999).search(np.zeros(256, dtype=np.float32), 3, timeout=5)


def test_docs_commands(tmp_path: Path, tenants: dict[str, Any]) -> None:
    from scripts.docs_commands import docs

    store = tenants["dental.example"]
    store.set_provider("embeddings", "rag_fakes:HashEmbeddings", settings={"model": "hash-v1"})
    url = str(tenants["engine"].url)
    base = ["--url", url, "--index-dir", str(tmp_path / "rag")]
    runner = CliRunner()
    bad = tmp_path / "notes.txt"
    bad.write_bytes(b"\xff\xfe\x00binary")
    result = runner.invoke(docs, ["ingest", "dental.example", str(KNOWLEDGE / "hours.md"), str(bad), *base])
    assert result.exit_code == 1
    assert "added" in result.stdout and "hours.md (4 chunks)" in result.stdout
    assert "refused" in result.stderr and "notes.txt" in result.stderr
    result = runner.invoke(docs, ["search", "dental.example", "saturday opening hours", "-k", "2", *base])
    assert result.exit_code == 0, result.output
    assert "[1] " in result.stdout and "hours.md" in result.stdout and "9 am to 1 pm" in result.stdout
    result = runner.invoke(docs, ["list", "dental.example", *base])
    assert "4 chunks" in result.stdout and "index: faiss, 4 vectors, model embeddings:hash:hash-v1:256" in result.stdout
    result = runner.invoke(docs, ["remove", "dental.example", "hours.md", *base])
    assert result.exit_code == 0 and "removed" in result.stdout
    result = runner.invoke(docs, ["search", "nobody.example", "x", *base])
    assert result.exit_code == 1 and "nobody.example" in result.output


def test_services_for_the_controller(tmp_path: Path, tenants: dict[str, Any]) -> None:
    from providers.fallback import FallbackEmbeddings
    from providers.tenant_set import TenantProviderConfig, TenantProviders
    from rag.services import SERVICE_NAMES, secretary_services, tenant_embeddings, tenant_retriever
    from rag.settings import RagSettings

    store = tenants["dental.example"]
    providers = TenantProviders(TenantProviderConfig(tenant="dental", tts_cache_dir=tmp_path / "tts"))
    retriever = tenant_retriever(tenants["engine"], store.tenant_id, HashEmbeddings(),
                                 settings=RagSettings(index_dir=tmp_path / "rag"))
    services = secretary_services(providers, retriever)
    assert tuple(services) == SERVICE_NAMES
    assert services["llm"] is providers.llm and services["stt"] is providers.stt and services["tts"] is providers.tts
    assert services["tts_cache"] is providers.tts_cache and services["retriever"] is retriever
    assert retriever.tenant_id == store.tenant_id and retriever.index.backend == "faiss"
    # Nothing ingested yet: no passages (the node then takes `unsure`), not an error.
    assert retriever.retrieve("anything").passages == []
    store.set_provider("embeddings", "rag_fakes:HashEmbeddings", settings={"model": "hash-v9"})
    chain = tenant_embeddings(store)
    assert isinstance(chain, FallbackEmbeddings) and chain.providers[0].settings.model == "hash-v9"
    with pytest.raises(VectorIndexError, match="faiss or pgvector"):
        RagSettings.from_env({"IVR_RAG_BACKEND": "elastic"})
    assert RagSettings.from_env({"IVR_RAG_BACKEND": "pgvector", "IVR_RAG_DIR": "/x"}).backend == "pgvector"
