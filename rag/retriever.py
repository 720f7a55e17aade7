"""Retrieval for one tenant: a question → the best passages, with scores and sources.

`Retriever(store, index, embeddings)` is bound to one tenant: the index is that tenant's, and
hits are resolved through the tenant's `TenantStore.get_chunks`, which drops any id that is not
the tenant's own; no code path here can return another tenant's text.

`retrieve(question, k)` embeds the question (``purpose="query"``) with the tenant's embedding
provider, refuses it when the model is not the one that built the index
(`EmbeddingModelMismatch`), searches (faiss in the model thread pool, or pgvector in the
database), and returns a `Retrieval`: `RetrievedPassage`s best first, plus the model and the
time each step took (for the call record). Chunk texts are cached per index generation (chunk ids
are only reused after the index changed), so a hot question costs no database round trip.
Database reads run in gevent's thread pool when the database is SQLite (a blocking C call).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog

from providers.embeddings.base import EmbeddingProvider
from providers.errors import ProviderError
from providers.llm.base import Passage
from rag.embedding_model import embed_with_model
from rag.errors import EmbeddingModelMismatch, RetrievalFailed
from rag.vector_index import VectorIndex
from schema.rows import ChunkInfo
from schema.store import TenantStore

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetrievedPassage:
    chunk_id: int
    document_id: int
    text: str
    score: float
    source: str          # file name of the document
    heading: str = ""    # heading path inside it
    page: int | None = None

    @property
    def citation(self) -> str:
        where = f"{self.source} › {self.heading}" if self.heading else self.source
        return f"{where} (p. {self.page})" if self.page else where

    def as_passage(self) -> Passage:
        """The LLM provider's view (`providers.llm.base.Passage`)."""
        return Passage(text=self.text, source=self.citation, score=round(self.score, 4))

    def as_dict(self) -> dict[str, Any]:
        return {"chunk_id": self.chunk_id, "document_id": self.document_id, "source": self.citation,
                "score": round(self.score, 4)}


@dataclass(frozen=True, slots=True)
class Retrieval:
    question: str
    passages: list[RetrievedPassage]
    model: str
    embed_ms: float
    search_ms: float
    total_ms: float
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def best_score(self) -> float | None:
        return self.passages[0].score if self.passages else None


class Retriever:
    """Retrieval over one tenant's documents."""

    def __init__(self, store: TenantStore, index: VectorIndex, embeddings: EmbeddingProvider, *,
                 k: int = 4, timeout: float = 5.0, cache_size: int = 4096,
                 db_call: Callable[[Callable[[], Any]], Any] | None = None) -> None:
        self.store = store
        self.index = index
        self.embeddings = embeddings
        self.k = k
        self.timeout = timeout
        self.cache_size = cache_size
        self._db_call = db_call or _call_here
        self._cache: OrderedDict[int, ChunkInfo] = OrderedDict()
        self._generation = ""

    @property
    def tenant_id(self) -> int:
        return self.store.tenant_id

    def _chunks(self, ids: list[int], generation: str) -> dict[int, ChunkInfo]:
        if generation != self._generation:
            self._cache.clear()
            self._generation = generation
        missing = [i for i in ids if i not in self._cache]
        if missing:
            for chunk in self._db_call(lambda: self.store.get_chunks(missing)):
                self._cache[chunk.id] = chunk
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        found = {}
        for i in ids:
            chunk = self._cache.get(i)
            if chunk is not None:
                self._cache.move_to_end(i)
                found[i] = chunk
        return found

    def embed_question(self, question: str) -> tuple[Any, str]:
        try:
            vectors, model = embed_with_model(self.embeddings, [question], purpose="query", timeout=self.timeout)
        except ProviderError as e:
            raise RetrievalFailed(f"cannot embed the question: {e}") from e
        return vectors[0], model

    def retrieve(self, question: str, k: int | None = None) -> Retrieval:
        started = time.monotonic()
        info = self.index.info()
        vector, model = self.embed_question(question)
        embedded = time.monotonic()
        if info is None or info.count == 0:
            return Retrieval(question, [], model, _ms(started, embedded), 0.0, _ms(started, time.monotonic()))
        if info.model != model:
            raise EmbeddingModelMismatch(info.model, model)
        hits = self.index.search(vector, k or self.k, timeout=self.timeout)
        searched = time.monotonic()
        chunks = self._chunks([h.chunk_id for h in hits], info.generation)
        passages = []
        for hit in hits:
            chunk = chunks.get(hit.chunk_id)
            if chunk is None:
                continue  # a vector whose chunk is gone (repaired by the next ingest)
            page = chunk.meta.get("page")
            passages.append(RetrievedPassage(
                chunk_id=chunk.id, document_id=chunk.document_id, text=chunk.text, score=hit.score,
                source=Path(chunk.source_path).name, heading=str(chunk.meta.get("heading", "")),
                page=int(page) if isinstance(page, int) else None))
        done = time.monotonic()
        result = Retrieval(question, passages, model, _ms(started, embedded), _ms(embedded, searched),
                           _ms(started, done), {"lookup_ms": _ms(searched, done)})
        log.info("rag.retrieved", tenant_id=self.tenant_id, hits=len(passages),
                 best=round(result.best_score, 3) if result.best_score is not None else None,
                 embed_ms=result.embed_ms, search_ms=result.search_ms, total_ms=result.total_ms)
        return result


def _ms(a: float, b: float) -> float:
    return round((b - a) * 1000, 2)


def _call_here(fn: Callable[[], T]) -> T:
    return fn()
