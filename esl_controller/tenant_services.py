"""What a tenant's calls get besides their flow: the tenant's providers, built once per configuration.

``services_for_snapshot(snapshot)`` turns the provider chains stored for a tenant (decrypted in
its snapshot) into a shared `providers.tenant_set.TenantProviders` — built once per
configuration version, so every call of the tenant shares models and HTTP sessions; a tenant
with no rows gets the local defaults (pocketsphinx, piper → flite, extractive, MiniLM).  With
``warm_in_background`` the primaries start loading right away (one shared, bounded warm-up per
provider, `providers.readiness`); a connecting call starts the TTS and STT ones if they are not
loaded yet and never waits for them (`warm_call_path`).  Given the database engine, the retrieval
and LLM services of the ``ask_ai`` node come along (`rag.services`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from providers.readiness import ensure_warm

log = structlog.get_logger(__name__)


def build_tenant_providers(snapshot: Any, *, tts_cache_root: Path | None = None) -> Any:
    from providers.tenant_set import TenantProviderConfig, TenantProviders

    options = {"tts_cache_dir": tts_cache_root} if tts_cache_root is not None else {}
    config = TenantProviderConfig.from_rows(snapshot.domain_uuid, snapshot.providers, **options)
    return TenantProviders.for_config(config)


def warm_call_path(providers: Any) -> None:
    """Start loading the first TTS and STT of the tenant (what a call needs first); never waits.

    A connecting call used to wait up to 3 s here (and each call spawned warm-ups that outlived
    it). Now one shared warm-up per provider
    runs in the background (`providers.readiness`), and while a model loads the chain serves from
    the next provider (flite for the default TTS), so the first caller hears a voice at once.
    """
    starter = getattr(providers, "warm_call_path", None)
    if starter is not None:
        starter()


def make_services_factory(*, engine: Any = None, tts_cache_root: Path | None = None,
                          warm_in_background: bool = True) -> Any:
    """``snapshot -> services``; with ``engine`` the tenant's calls also get the secretary (``ask_ai``)."""
    def services_for_snapshot(snapshot: Any) -> dict[str, Any]:
        providers = build_tenant_providers(snapshot, tts_cache_root=tts_cache_root)
        services: dict[str, Any] = {"providers": providers}
        if engine is not None:
            services.update(_secretary_services(engine, snapshot, providers))
        if warm_in_background:
            for chain in providers.all_providers().values():
                ensure_warm(chain[0])
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
