"""What the controller hands an `ask_ai` node: `secretary_services(tenant_providers, retriever)`.

The lead's wiring merges the returned mapping into a call's services (the controller sets the
keys that are `FlowContext` attributes and puts the others into ``ctx.extensions``). Names the
`ask_ai` node reads from ``ctx.extensions`` (see `ivr_flows.nodes.ask_ai`):

    "llm"        an `LLMProvider` (the tenant's `FallbackLLM` chain)
    "retriever"  a `rag.retriever.Retriever` for the tenant (None: answers without documents → unsure)
    "stt"        an `STTProvider` (the tenant's `FallbackSTT`): incremental transcription
    "tts"        a `TTSProvider` (the tenant's `FallbackTTS`): sentence-by-sentence answers
    "tts_cache"  the tenant's `TTSCache` (fillers and repeated answers are synthesized once)

`tenant_retriever(engine, tenant_id, embeddings)` builds the tenant's retriever for the backend
in `RagSettings` (faiss files or pgvector).  Its database reads run in the call's greenlet, not
in gevent's thread pool: once monkey-patched, SQLAlchemy's pool locks are gevent primitives,
which can deadlock from a native thread (seen with PostgreSQL restarting under the call-record
writer); chunk reads by id are short on SQLite and cooperative on PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from providers.embeddings.base import EmbeddingProvider
from rag.retriever import Retriever
from rag.settings import RagSettings, open_index
from schema.database import make_session_factory
from schema.store import TenantStore

SERVICE_NAMES = ("llm", "retriever", "stt", "tts", "tts_cache")


def secretary_services(tenant_providers: Any, retriever: Retriever | None) -> dict[str, Any]:
    """The per-call services of the virtual secretary, from a tenant's `TenantProviders`."""
    return {
        "llm": tenant_providers.llm,
        "retriever": retriever,
        "stt": tenant_providers.stt,
        "tts": tenant_providers.tts,
        "tts_cache": getattr(tenant_providers, "tts_cache", None),
    }


def tenant_retriever(engine: Engine, tenant_id: int, embeddings: EmbeddingProvider, *,
                     settings: RagSettings | None = None, k: int = 4, timeout: float = 5.0) -> Retriever:
    """The retriever of one tenant (index from `settings`, chunks from the tenant's store)."""
    settings = settings or RagSettings.from_env()
    store = TenantStore(make_session_factory(engine), tenant_id)
    index = open_index(settings, tenant_id, engine)
    return Retriever(store, index, embeddings, k=k, timeout=timeout, db_call=None)


def tenant_embeddings(store: TenantStore) -> EmbeddingProvider:
    """The tenant's embedding chain from its provider configuration (default: sentence_transformers).

    For the command line; a running controller takes ``TenantProviders.embeddings`` instead.
    """
    from providers.fallback import FallbackEmbeddings
    from providers.registry import build

    configured = store.providers("embeddings", decrypt=True)
    chain = [build("embeddings", p.provider, dict(p.settings),
                   {k: v.reveal() for k, v in (p.secrets or {}).items()}) for p in configured]
    if not chain:
        chain = [build("embeddings", "sentence_transformers")]
    return FallbackEmbeddings(chain)  # type: ignore[arg-type]
