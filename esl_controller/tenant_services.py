"""What a tenant's calls get besides their flow: the tenant's providers, built once per configuration.

``services_for_snapshot(snapshot)`` turns the provider chains stored for a tenant (decrypted in
its snapshot) into a shared `providers.tenant_set.TenantProviders` — built once per
configuration version, so every call of the tenant shares models and HTTP sessions; a tenant
with no rows gets the local defaults (pocketsphinx, piper → flite, extractive, MiniLM).  With
``warm_in_background`` the primaries are loaded right away, so the first caller does not wait
for a model; each call still warms the TTS and STT primaries with a short deadline when it
connects, before it is answered (`warm_call_path`).  Given the database engine, the retrieval
and LLM services of the ``ask_ai`` node come along (`rag.services`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gevent
import structlog

log = structlog.get_logger(__name__)


def build_tenant_providers(snapshot: Any, *, tts_cache_root: Path | None = None) -> Any:
    from providers.tenant_set import TenantProviderConfig, TenantProviders

    options = {"tts_cache_dir": tts_cache_root} if tts_cache_root is not None else {}
    config = TenantProviderConfig.from_rows(snapshot.domain_uuid, snapshot.providers, **options)
    return TenantProviders.for_config(config)


def warm_call_path(providers: Any, timeout: float) -> None:
    """Load the first TTS and STT of the tenant (what a call needs first), waiting at most ``timeout``."""
    targets = [chain.providers[0] for chain in (providers.tts, providers.stt) if chain.providers]
    jobs = [gevent.spawn(p.warm_up) for p in targets]
    gevent.joinall(jobs, timeout=timeout)


def make_services_factory(*, engine: Any = None, tts_cache_root: Path | None = None,
                          warm_in_background: bool = True) -> Any:
    """``snapshot -> services``; with ``engine`` the tenant's calls also get the secretary (``ask_ai``)."""
    def services_for_snapshot(snapshot: Any) -> dict[str, Any]:
        providers = build_tenant_providers(snapshot, tts_cache_root=tts_cache_root)
        services: dict[str, Any] = {"providers": providers}
        if engine is not None:
            services.update(_secretary_services(engine, snapshot, providers))
        if warm_in_background:
            gevent.spawn(providers.warm_up, 120.0)
        return services

    return services_for_snapshot


def _secretary_services(engine: Any, snapshot: Any, providers: Any) -> dict[str, Any]:
    """Retrieval over the tenant's documents and its LLM/STT/TTS chains, for ``ask_ai``."""
    from rag.services import secretary_services, tenant_retriever

    try:
        retriever = tenant_retriever(engine, snapshot.tenant_id, providers.embeddings)
    except Exception:
        # No index yet, or an index built by another embedding model: the node answers "unsure".
        log.exception("tenant_services.retriever_unavailable", tenant=snapshot.domain_name)
        retriever = None
    return secretary_services(providers, retriever)
