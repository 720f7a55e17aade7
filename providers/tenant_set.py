"""A tenant's provider set: built once per configuration version, warmed up per call.

``TenantProviderConfig`` is the shape a tenant's provider configuration takes (ordered
chains per kind, each entry a registry name with settings and secrets); the ``schema``
package stores it, encrypted secrets and all, and hands it over decrypted.
``TenantProviders(config)`` builds one ``Fallback*`` provider per kind plus the tenant's
TTS cache; ``TenantProviders.for_config(config)`` returns the cached set for that
(tenant, version), building it on first use, so every call of a tenant shares clients and
models, and a new version replaces the old set atomically.

``warm_up()`` loads local models and opens HTTP sessions of the first provider of each chain,
through `providers.readiness` (one shared warm-up per provider, bounded; a failure is one log
line, the chain falls back at call time); ``warm_call_path()`` starts the TTS and STT ones when
a call connects and never waits: a caller is never held by a model that is loading.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import gevent
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from providers.base import Provider
from providers.errors import ProviderConfigError
from providers.fallback import FallbackEmbeddings, FallbackLLM, FallbackSTT, FallbackTTS
from providers.readiness import DEFAULT_WARM_SECONDS, ensure_warm
from providers.readiness import status as readiness_status
from providers.registry import build, validate_settings
from providers.tts.cache import TTSCache

log = structlog.get_logger(__name__)


class ProviderSpec(BaseModel):
    """One entry of a chain: a registry name, its settings and its secrets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    settings: dict[str, Any] = Field(default_factory=dict)
    secrets: dict[str, SecretStr] = Field(default_factory=dict)

    def plain_secrets(self) -> dict[str, str]:
        return {k: v.get_secret_value() for k, v in self.secrets.items()}


def _chain(*names: str) -> list[ProviderSpec]:
    return [ProviderSpec(name=n) for n in names]


def default_cache_root() -> Path:
    """Where synthesized prompts are kept: ``$IVR_TTS_CACHE_DIR``, else ``$IVR_VAR_DIR/tts-cache`` (the
    controller's own folder, ``var/`` by default), absolute because FreeSWITCH plays the files by path."""
    explicit = os.environ.get("IVR_TTS_CACHE_DIR")
    if explicit:
        return Path(explicit).resolve()
    return (Path(os.environ.get("IVR_VAR_DIR") or "var") / "tts-cache").resolve()


class TenantProviderConfig(BaseModel):
    """A tenant's providers: an ordered chain per kind (first is primary)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: str
    version: str | int = 0
    stt: list[ProviderSpec] = Field(default_factory=lambda: _chain("pocketsphinx"))
    tts: list[ProviderSpec] = Field(default_factory=lambda: _chain("piper", "flite"))
    llm: list[ProviderSpec] = Field(default_factory=lambda: _chain("extractive"))
    embeddings: list[ProviderSpec] = Field(default_factory=lambda: _chain("sentence_transformers"))
    tts_cache_dir: Path | None = None
    tts_cache_max_bytes: int = 256 * 1024 * 1024
    failure_threshold: int = 3
    cooldown_seconds: float = 30.0

    @field_validator("stt", "tts", "llm", "embeddings")
    @classmethod
    def _not_empty(cls, chain: list[ProviderSpec]) -> list[ProviderSpec]:
        if not chain:
            raise ValueError("a chain needs at least one provider")
        return chain

    @classmethod
    def from_rows(cls, tenant: str, rows: Iterable[Any], *, version: str | int | None = None,
                  **options: Any) -> TenantProviderConfig:
        """From stored chain rows (objects with ``kind``, ``provider``, ``position``, ``settings`` and
        ``secrets`` whose values are strings or expose ``reveal()``, like ``schema``'s
        ``ProviderSnapshot``). Kinds without rows keep the local defaults. Without ``version``, a
        hash of the rows (secrets included) stands for it, so any change builds a new set."""
        chains: dict[str, list[tuple[int, ProviderSpec]]] = {}
        digest = hashlib.sha256()
        for row in rows:
            secrets = {k: (v.reveal() if hasattr(v, "reveal") else str(v)) for k, v in (row.secrets or {}).items()}
            spec = ProviderSpec(name=row.provider, settings=dict(row.settings or {}), secrets=secrets)
            chains.setdefault(row.kind, []).append((int(row.position), spec))
            digest.update(json.dumps([row.kind, row.position, row.provider, spec.settings, sorted(secrets.items())],
                                     sort_keys=True, default=str).encode())
        data: dict[str, Any] = {kind: [spec for _, spec in sorted(chain, key=lambda c: c[0])]
                                for kind, chain in chains.items()}
        return cls(tenant=tenant, version=version if version is not None else digest.hexdigest()[:16],
                   **data, **options)

    def validate_providers(self) -> None:
        """Check every name and settings block (no loading); raise ``ProviderConfigError``."""
        for kind in ("stt", "tts", "llm", "embeddings"):
            for i, spec in enumerate(getattr(self, kind)):
                try:
                    validate_settings(kind, spec.name, spec.settings)
                except ProviderConfigError as e:
                    raise ProviderConfigError(f"{kind}[{i}]: {e}") from e


class TenantProviders:
    """The built providers of one tenant configuration version."""

    _cache: ClassVar[dict[str, TenantProviders]] = {}

    def __init__(self, config: TenantProviderConfig | Mapping[str, Any]) -> None:
        self.config = config if isinstance(config, TenantProviderConfig) \
            else TenantProviderConfig.model_validate(config)
        c = self.config
        opts = {"failure_threshold": c.failure_threshold, "cooldown": c.cooldown_seconds}
        self.stt = FallbackSTT([self._build("stt", s) for s in c.stt], **opts)       # type: ignore[misc]
        self.tts = FallbackTTS([self._build("tts", s) for s in c.tts], **opts)       # type: ignore[misc]
        self.llm = FallbackLLM([self._build("llm", s) for s in c.llm], **opts)       # type: ignore[misc]
        self.embeddings = FallbackEmbeddings([self._build("embeddings", s) for s in c.embeddings],
                                             **opts)                                  # type: ignore[misc]
        self.tts_cache = TTSCache(c.tts_cache_dir or default_cache_root(), c.tenant,
                                  max_bytes=c.tts_cache_max_bytes)

    @staticmethod
    def _build(kind: str, spec: ProviderSpec) -> Provider:
        return build(kind, spec.name, spec.settings, spec.plain_secrets())

    @property
    def tenant(self) -> str:
        return self.config.tenant

    @property
    def version(self) -> str | int:
        return self.config.version

    def all_providers(self) -> dict[str, list[Provider]]:
        return {"stt": list(self.stt.providers), "tts": list(self.tts.providers),
                "llm": list(self.llm.providers), "embeddings": list(self.embeddings.providers)}

    def warm_up(self, timeout: float = 30.0, *, all_in_chain: bool = False) -> dict[str, str]:
        """Warm the primary of each chain (or every provider), waiting at most ``timeout``; returns
        label → "ok", "loading" (still warming in the background) or the error. The warm-ups are
        the shared ones of `providers.readiness` (one per provider, whoever asks)."""
        targets = [p for chain in self.all_providers().values() for p in (chain if all_in_chain else chain[:1])]
        jobs = [job for job in (ensure_warm(p, max(timeout, DEFAULT_WARM_SECONDS)) for p in targets) if job]
        gevent.joinall(jobs, timeout=timeout)
        status = {p.label: readiness_status(p) for p in targets}
        failed = {k: v for k, v in status.items() if v != "ok"}
        if failed:
            log.warning("providers.warm_up_incomplete", tenant=self.tenant, failed=failed)
        return status

    def warm_call_path(self) -> None:
        """Start loading what a call needs first (the TTS and STT primaries) without waiting for it."""
        for chain in (self.tts, self.stt):
            if chain.providers:
                ensure_warm(chain.providers[0])

    def close(self) -> None:
        for chain in (self.stt, self.tts, self.llm, self.embeddings):
            chain.close()

    @classmethod
    def for_config(cls, config: TenantProviderConfig) -> TenantProviders:
        """The shared set for (tenant, version); a new version replaces the previous one."""
        current = cls._cache.get(config.tenant)
        if current is not None and current.version == config.version:
            return current
        fresh = cls(config)
        cls._cache[config.tenant] = fresh
        log.info("providers.built", tenant=config.tenant, version=config.version)
        return fresh

    @classmethod
    def forget(cls, tenant: str) -> None:
        cls._cache.pop(tenant, None)
