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

Outside a call — `ivr ask`, `ivr chat` and the WhatsApp worker — `tenant_providers(store)` builds
the tenant's provider set from its stored chains (the same `TenantProviders` a controller shares
for that configuration version) and `tenant_secretary(...)` the secretary engine
(`rag.secretary.Secretary`) over them and the tenant's retriever, so every channel answers with
the tenant's own documents and providers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Engine

from providers.embeddings.base import EmbeddingProvider
from rag.retriever import Retriever
from rag.secretary import HttpWebhookRunner, Secretary, SecretaryServices, SecretarySettings, ToolRunner
from rag.settings import RagSettings, open_index
from schema.database import make_session_factory
from schema.store import TenantStore

if TYPE_CHECKING:
    from providers.tenant_set import TenantProviders

log = structlog.get_logger(__name__)

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


def tenant_providers(store: TenantStore, *, tts_cache_dir: Path | None = None) -> TenantProviders:
    """The tenant's providers from its stored chains (local defaults for kinds with no rows)."""
    from providers.tenant_set import TenantProviderConfig, TenantProviders

    tenant = store.tenant()
    options = {"tts_cache_dir": tts_cache_dir} if tts_cache_dir is not None else {}
    config = TenantProviderConfig.from_rows(tenant.domain_uuid, store.providers(decrypt=True), **options)
    return TenantProviders.for_config(config)


def tenant_secretary(engine: Engine, store: TenantStore, settings: SecretarySettings, *,
                     providers: TenantProviders | None = None, rag_settings: RagSettings | None = None,
                     tools: ToolRunner | None = None, retrieval_timeout: float = 5.0) -> Secretary:
    """The secretary engine of one tenant: its LLM chain and its retriever (None when it has no index
    yet, or one built by another embedding model: the secretary is then `unsure`)."""
    providers = providers or tenant_providers(store)
    try:
        retriever: Retriever | None = tenant_retriever(engine, store.tenant_id, providers.embeddings,
                                                       settings=rag_settings, k=settings.top_k,
                                                       timeout=retrieval_timeout)
    except Exception as e:
        log.warning("rag.retriever_unavailable", tenant_id=store.tenant_id, error=type(e).__name__)
        retriever = None
    # The tenant's URL policy (`ivr tenants update --allow-host/--allow-network`), as on the telephone.
    from ivr_flows.url_policy import UrlPolicy

    policy = UrlPolicy.from_settings(store.tenant().settings)
    services = SecretaryServices(llm=providers.llm, retriever=retriever,
                                 tools=tools or HttpWebhookRunner(allowed=lambda url: policy.problem(url) is None,
                                                                  session_factory=policy.session))
    return Secretary(settings, services)


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
