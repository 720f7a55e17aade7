"""Fixtures of the RAG tests: helper modules on the path, fast fakes, and the real local models
loaded once per session (tests using them are marked ``models``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_DEACTIVATE_ASYNC_LOAD", "1")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "providers"))

from providers_stub_server import StubServer


@pytest.fixture
def stub() -> Iterator[StubServer]:
    server = StubServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def local_providers(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The default local provider set (MiniLM, piper, pocketsphinx, extractive), warmed up once."""
    from providers.tenant_set import TenantProviderConfig, TenantProviders

    providers = TenantProviders(TenantProviderConfig(tenant="dental", tts_cache_dir=tmp_path_factory.mktemp("tts")))
    providers.warm_up(180)
    return providers


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The example clinic's documents in a real faiss index, embedded with the bag-of-words fake."""
    from rag_fakes import HashEmbeddings
    from rag_harness import KNOWLEDGE, make_database

    from rag.faiss_index import FaissIndex
    from rag.ingest import Ingester
    from rag.retriever import Retriever

    folder = tmp_path_factory.mktemp("kb")
    _engine, stores = make_database(folder, "dental.example")
    store = stores["dental.example"]
    index = FaissIndex(folder / "rag", store.tenant_id)
    embeddings = HashEmbeddings()
    reports = Ingester(store, index, embeddings).ingest([KNOWLEDGE])
    assert all(r.status == "added" for r in reports)
    return Retriever(store, index, embeddings)
